"""The versions probe runs in the project's interpreter (locking/installed.py)."""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

import pytest

from slimbuild.errors import ConfigError
from slimbuild.locking.installed import probe_versions
from tests.constants import USAGE


def test_probe_reads_versions_in_that_interpreter() -> None:
    versions = probe_versions(sys.executable)
    assert versions["packaging"] == importlib.metadata.version("packaging")


def test_C17_probe_of_a_broken_interpreter_is_a_config_error(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho not json\n")
    fake.chmod(0o755)
    with pytest.raises(ConfigError) as info:
        probe_versions(str(fake))
    assert info.value.exit_code == USAGE and "the probe printed no mapping" in info.value.message
    with pytest.raises(ConfigError, match="cannot read installed versions"):
        probe_versions(str(tmp_path / "missing"))


def test_C18_editable_and_direct_url_installs_are_not_pinned(tmp_path: Path) -> None:
    import subprocess

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    (site,) = venv.glob("lib/python3*/site-packages")
    for name, version, direct in (("six", "1.16.0", False), ("mylib", "0.1", True)):
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        if direct:
            (info / "direct_url.json").write_text('{"url": "file:///src/mylib", "dir_info": {"editable": true}}')
    assert probe_versions(str(venv / "bin" / "python")) == {"six": "1.16.0"}
