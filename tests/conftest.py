"""Shared fixtures: run the CLI in-process with an isolated cache and environment."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from slimbuild.cli import main


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache and no ambient virtualenv, so results do not depend on the host."""
    monkeypatch.setenv("SLIMBUILD_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    monkeypatch.delenv("SLIMBUILD_DEBUG", raising=False)
    for key in list(os.environ):
        if key.startswith("SLIMBUILD_") and key not in {"SLIMBUILD_CACHE", "SLIMBUILD_STATE"}:
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def run_cli() -> Callable[..., Run]:
    """Run ``slimbuild ARGS`` in-process; returns exit code, stdout and stderr."""

    def _run(*args: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
        return Run(code, out.getvalue(), err.getvalue())

    return _run


@pytest.fixture
def project(tmp_path: Path) -> Callable[[dict[str, str | bytes]], Path]:
    """Write a small project tree from a {relative path: content} dict."""

    def _make(files: dict[str, str | bytes]) -> Path:
        root = tmp_path / "proj"
        root.mkdir(exist_ok=True)
        for rel, content in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content, encoding="utf-8")
        return root

    return _make
