"""Trace: entrypoints, the module finder, parsing, the import graph, notebooks, resolution and reconciliation."""
