"""Requirement files as users write them, against real pip: `-e .`, index options, `--hash` pins, conflicts (C20-C25).

The index is a real PEP 503 "simple" index served on 127.0.0.1 from the test wheels, behind HTTP basic auth, so a
lock that ignored the requirements file's ``--index-url`` (or printed its credentials) fails the test.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from slimbuild.locking.lockfile import parse_lock
from tests.conftest import Run
from tests.constants import INTEGRITY, OK, RESOLUTION

pytestmark = pytest.mark.network

CLI = Callable[..., Run]
SECRET = "s3cretTOKEN"  # the index's password: must never appear in any output
DEAD = "http://127.0.0.1:9/simple"  # nothing listens: a lock that ignores the file's --index-url fails


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(wheels: Path) -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        files.setdefault(canonicalize_name(parse_wheel_filename(wheel.name)[0]), []).append(wheel)
    return files


def _handler(wheels: Path) -> type[BaseHTTPRequestHandler]:
    token = "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _send(self, code: int, body: bytes, ctype: str = "text/html") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if code == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.headers.get("Authorization") != token:
                return self._send(401, b"auth required")
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            files = _files(wheels)  # read per request: a test may add a file
            if len(parts) == 2 and parts[0] == "simple" and canonicalize_name(parts[1]) in files:
                links = "".join(
                    f'<a href="/files/{html.escape(w.name)}#sha256={_sha256(w)}">{html.escape(w.name)}</a>\n'
                    for w in files[canonicalize_name(parts[1])]
                )
                return self._send(200, f"<html><body>{links}</body></html>".encode())
            if len(parts) == 2 and parts[0] == "files" and (wheels / parts[1]).is_file():
                return self._send(200, (wheels / parts[1]).read_bytes(), "application/octet-stream")
            return self._send(404, b"not found")

    return Handler


@pytest.fixture
def served_index(index_dir: Path) -> Iterator[str]:
    """The test wheels as a simple index on 127.0.0.1 (basic auth user:SECRET); yields its URL with credentials."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(index_dir))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://user:{SECRET}@127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def dead_default_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """pip's configuration points at a dead index (and nothing else): only the requirements file's options can work."""
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_INDEX_URL", DEAD)
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "3")


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _pins(root: Path) -> dict[str, str]:
    return {d.name: d.version for d in parse_lock((root / "slimbuild.lock").read_text()).dists}


def test_C20_editable_dot_reads_the_projects_own_declarations(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    """cookiecutter-data-science's requirements.txt (`-e .`): the project's pyproject.toml decides what is locked."""
    root = _project(
        tmp_path,
        {
            "requirements.txt": "-e .\n",
            "pyproject.toml": '[project]\nname = "proj"\nversion = "0.1"\ndependencies = ["six<1.17"]\n',
            "proj/__init__.py": "",
            "proj/helpers.py": "import six\n",
            "main.py": "from proj import helpers\n",
        },
    )
    run = run_cli("lock", str(root))
    assert run.code == OK, run.err
    assert _pins(root) == {"six": "1.16.0"}  # 1.17.0 is on the index: pyproject.toml's bound kept it out
    analyzed = run_cli("analyze", str(root), "--json")
    assert analyzed.code == OK, analyzed.err
    assert "proj/helpers.py" in analyzed.out  # the project's code is first-party: traced, not a distribution


def test_C21_index_url_in_requirements_file_is_honoured(
    served_index: str, dead_default_index: None, tmp_path: Path, run_cli: CLI
) -> None:
    """`--index-url` inside requirements.txt is where the lock resolves and the wheels come from; never printed."""
    root = _project(tmp_path, {"requirements.txt": f"--index-url {served_index}\nsix==1.16.0\n", "main.py": "import six\n"})
    run = run_cli("lock", str(root), "--json")
    assert run.code == OK, run.err
    assert _pins(root) == {"six": "1.16.0"}
    text = run.out + run.err + (root / "slimbuild.lock").read_text()
    assert SECRET not in text and "127.0.0.1:9" not in run.err
    assert "--index-url" not in (root / "slimbuild.lock").read_text()  # options never enter the lock
    check = run_cli("check", str(root))
    assert "SB012" not in check.out + check.err and SECRET not in check.out + check.err


def test_C21_extra_index_url_in_requirements_file_warns_at_its_line(
    served_index: str, dead_default_index: None, tmp_path: Path, run_cli: CLI
) -> None:
    root = _project(
        tmp_path,
        {
            "requirements.txt": f"--index-url {served_index}\nsix==1.16.0\n--extra-index-url {served_index}\n",
            "main.py": "import six\n",
        },
    )
    run = run_cli("lock", str(root))
    assert run.code == OK, run.err
    out = run.out + run.err
    assert "requirements.txt:3: SB024" in out and "dependency confusion" in out
    assert SECRET not in out and "http://***@127.0.0.1:" in out
    check = run_cli("check", str(root))
    assert "requirements.txt:3: SB024" in check.out + check.err and SECRET not in check.out + check.err


def test_C23_users_hash_pin_is_honoured(
    served_index: str, dead_default_index: None, index_dir: Path, tmp_path: Path, run_cli: CLI
) -> None:
    """The release has two files on the index; the lock keeps only the one the user pinned, and installs it."""
    wheel = index_dir / "six-1.16.0-py2.py3-none-any.whl"
    good = _sha256(wheel)
    other = index_dir / "six-1.16.0-py3-none-any.whl"
    shutil.copyfile(wheel, other)
    with zipfile.ZipFile(other, "a") as zf:
        zf.comment = b"another build of the release, which the user did not pin"
    assert _sha256(other) != good
    root = _project(
        tmp_path,
        {"requirements.txt": f"-i {served_index}\nsix==1.16.0 --hash=sha256:{good}\n", "main.py": "import six\n"},
    )
    run = run_cli("lock", str(root))
    assert run.code == OK, run.err
    (dist,) = parse_lock((root / "slimbuild.lock").read_text()).dists
    assert dist.hashes == (f"sha256:{good}",)  # only the user's file may be installed


def test_C23_users_hash_pin_mismatch_is_exit_5(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    wrong = "ab" * 32
    got = _sha256(offline / "six-1.16.0-py2.py3-none-any.whl")
    root = _project(tmp_path, {"requirements.txt": f"# pinned\nsix==1.16.0 --hash=sha256:{wrong}\n", "main.py": "import six\n"})
    run = run_cli("lock", str(root))
    assert run.code == INTEGRITY, run.err
    assert "requirements.txt:2" in run.err and "six==1.16.0" in run.err
    assert f"sha256:{wrong}" in run.err and f"sha256:{got}" in run.err
    assert not (root / "slimbuild.lock").exists()


def test_C24_lock_outcome_records_the_index_sources(
    served_index: str, dead_default_index: None, tmp_path: Path
) -> None:
    """The sources the manifest records: the requirements file's --index-url replaces PIP_INDEX_URL, masked."""
    from slimbuild.config import load_settings
    from slimbuild.pipeline.locking import lock

    root = _project(tmp_path, {"requirements.txt": f"-i {served_index}\nsix\n", "main.py": "import six\n"})
    (outcome,) = lock(load_settings(root))
    port = served_index.rsplit(":", 1)[1].split("/")[0]
    assert outcome.index_sources == (f"http://***@127.0.0.1:{port}/simple",)
    (again,) = lock(load_settings(root))  # a fresh lock (pip-compile not run) records them too
    assert not again.resolved and again.index_sources == outcome.index_sources


def test_C22_conflict_found_by_pip_compile_names_the_declarations(offline: Path, tmp_path: Path, run_cli: CLI) -> None:
    """A conflict the pre-check cannot prove (the index has no version in the range) still names both declarations."""
    root = _project(
        tmp_path,
        {
            "requirements.txt": "six>1.16.0\n",
            "pyproject.toml": '[project]\nname = "proj"\nversion = "0.1"\ndependencies = ["six<1.17"]\n',
            "main.py": "import six\n",
        },
    )
    run = run_cli("lock", str(root))
    assert run.code == RESOLUTION, run.err
    assert "requirements.txt:1 says six>1.16.0" in run.err and "pyproject.toml:4 says six<1.17" in run.err
