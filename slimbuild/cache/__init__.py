"""Content-addressed caches and the replay of unchanged results (imported by the pre-commit hook: keep it light)."""
