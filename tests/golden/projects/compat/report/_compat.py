"""Backports for older Pythons and a Windows console: none of them runs on a 3.11 Linux image."""
import os
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

if sys.version_info[:2] >= (3, 10):
    from importlib.metadata import version
else:
    from importlib_metadata import version

if os.name == "nt":
    from report import _winconsole  # noqa: F401  (first-party, Windows only: never followed)

__all__ = ["tomllib", "version"]
