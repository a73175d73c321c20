"""Build: the plan, the rendered Dockerfile, the context tar, the engine interface and the builder-stage script."""
