"""Fixtures for the real pip-compile / pip download tests: a local offline index."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Small real wheels, downloaded once from PyPI and reused across runs.
WHEELS = (
    "six==1.16.0",
    "six==1.17.0",
    "python-dateutil==2.9.0.post0",
    "attrs==23.2.0",
    "idna==3.7",
    "setuptools==69.5.1",
)
PLATFORM_WHEELS = ("pyyaml==6.0.1",)
PLATFORMS = ("manylinux_2_17_x86_64", "manylinux_2_17_aarch64")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "network: downloads real wheels once (then cached)")


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without any pip setting, isolated from the machine's pip config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _download(dest: Path, reqs: tuple[str, ...], *platform_args: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--dest",
            str(dest),
            *platform_args,
            *reqs,
        ],
        env=clean_env(),  # pip's default index
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="session")
def wheel_dir() -> Path:
    """Directory of real wheels (x86_64 and aarch64 where platform-specific)."""
    dest = Path(os.environ.get("SLIMBUILD_TEST_WHEELS", "~/.cache/slimbuild-test-wheels"))
    dest = dest.expanduser()
    stamp = dest / ".complete-v1"
    if not stamp.exists():
        dest.mkdir(parents=True, exist_ok=True)
        for req in WHEELS:  # one by one: pip refuses two versions of six in one run
            _download(dest, (req,))
        for platform in PLATFORMS:
            _download(
                dest,
                PLATFORM_WHEELS,
                "--platform",
                platform,
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                "--abi",
                "cp311",
            )
        stamp.write_text("ok\n")
    return dest


@pytest.fixture()
def index_dir(wheel_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the wheel dir a test may tamper with."""
    local = tmp_path / "index"
    local.mkdir()
    for wheel in wheel_dir.glob("*.whl"):
        shutil.copyfile(wheel, local / wheel.name)
    yield local


@pytest.fixture
def offline(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point pip at the local index only (the real user's pip config would apply otherwise)."""
    for key, value in clean_env(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(index_dir)).items():
        monkeypatch.setenv(key, value)
    keep = {"PIP_NO_INDEX", "PIP_FIND_LINKS", "PIP_CONFIG_FILE", "PIP_DISABLE_PIP_VERSION_CHECK"}
    for key in [k for k in os.environ if k.startswith("PIP_") and k not in keep]:
        monkeypatch.delenv(key)
    return index_dir
