"""A sentinel credential in every input channel never reaches any output, record or image (B17).

A real index on 127.0.0.1 with basic auth serves the wheel the project needs; the credential reaches slimbuild
through an index URL in the environment (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL), a pip config file (PIP_CONFIG_FILE),
a ~/.netrc, and requirement lines. Each channel's build must succeed (the index saw that channel's password) and
the sentinel must be absent from stdout/stderr (text and --json), the lock, the manifest beside the project and in
the image label, the build-context tar and ``docker save`` of the image. The channels that fail by design (a URL
requirement cannot be hash-locked; an unreachable index) are grepped in their failure output.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from slimbuild.image.engine import DockerEngine
from slimbuild.image.plan import PIP_WHEEL
from tests.conftest import Run
from tests.constants import OK, RESOLUTION
from tests.docker.conftest import BASE_IMAGE

pytestmark = pytest.mark.docker
SENTINEL = "sntl" + uuid.uuid4().hex[:12]  # every channel's password starts with it; grepped for everywhere
USER = "builder"
SIX = "six-1.16.0-py2.py3-none-any.whl"
CLI = Callable[..., Run]
# The docker tier's shared cache (as in test_build_examples.py): pip's wheel is usually there already.
SHARED_CACHE = Path(os.environ.get("SLIMBUILD_TEST_CACHE", "~/.cache/slimbuild-test-cache")).expanduser()


@dataclass
class _Index:
    """A PEP 503 index (``/simple/`` and a second one, ``/extra/``) that answers only basic auth with the sentinel."""

    wheels: Path
    passwords: set[str] = field(default_factory=set)  # every password that authenticated
    port: int = 0

    def url(self, password: str | None = None, root: str = "simple") -> str:
        auth = f"{USER}:{password}@" if password is not None else ""
        return f"http://{auth}127.0.0.1:{self.port}/{root}/"


def _handler(index: _Index) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            header = self.headers.get("Authorization", "")
            basic = base64.b64decode(header[6:]).decode() if header.startswith("Basic ") else ""
            user, _, password = basic.partition(":")
            if user != USER or not password.startswith(SENTINEL):
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="sentinel"')
                self.end_headers()
                return
            index.passwords.add(password)
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            if len(parts) == 2 and parts[0] == "files" and (index.wheels / parts[1]).is_file():
                return self._send((index.wheels / parts[1]).read_bytes(), "application/octet-stream")
            wheels = sorted(p.name for p in index.wheels.glob("*.whl"))
            if len(parts) == 1:
                names = sorted({w.split("-")[0].lower().replace("_", "-") for w in wheels})
                return self._page("".join(f'<a href="{n}/">{n}</a>\n' for n in names))
            if len(parts) == 2:
                mine = [w for w in wheels if w.split("-")[0].lower().replace("_", "-") == parts[1]]
                if mine:
                    return self._page("".join(f'<a href="/files/{html.escape(w)}">{html.escape(w)}</a>\n' for w in mine))
            self.send_error(404)

        def _page(self, body: str) -> None:
            self._send(f"<!DOCTYPE html><html><body>\n{body}</body></html>\n".encode(), "text/html")

        def _send(self, data: bytes, kind: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


def _cached_wheel(filename: str, requirement: str) -> Path:
    """A wheel from the shared test wheels or the docker tier's shared cache; downloaded once from PyPI when missing."""
    shared = Path(os.environ.get("SLIMBUILD_TEST_WHEELS", "~/.cache/slimbuild-test-wheels")).expanduser()
    found = [shared / filename, *sorted((SHARED_CACHE / "wheels").glob(f"sha256/*/{filename}"))]
    for path in found:
        if path.is_file():
            return path
    shared.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(shared), requirement],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PIP_")}, "PIP_CONFIG_FILE": os.devnull},
        check=True,
        capture_output=True,
    )
    return shared / filename


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheels the build needs (six, and the pip the builder stage runs), served by the index."""
    served = tmp_path_factory.mktemp("served")
    pip = f"pip-{PIP_WHEEL.version}-py3-none-any.whl"
    for filename, requirement in ((SIX, "six==1.16.0"), (pip, f"pip=={PIP_WHEEL.version}")):
        shutil.copyfile(_cached_wheel(filename, requirement), served / filename)
    return served


@pytest.fixture(scope="module")
def index(wheels: Path) -> Iterator[_Index]:
    served = _Index(wheels)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(served))
    served.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served
    server.shutdown()
    server.server_close()


@pytest.fixture
def pip_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No pip setting from the machine; HOME a fresh directory (its ~/.netrc is a channel); a fresh slimbuild cache."""
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("SLIMBUILD_CACHE", str(tmp_path / "cache"))  # nothing cached: pip must fetch through the channel
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    return home


def _project(root: Path, index: _Index, extra_requirement: str = "") -> Path:
    root.mkdir()
    (root / "main.py").write_text('import six\n\nprint("six", six.__version__)\n')
    # A declared but unused URL requirement passes (it is left out of the lock and the image), credential and all.
    unused = f"leftpad @ http://{USER}:{SENTINEL}-unused@127.0.0.1:{index.port}/files/leftpad-1.0-py3-none-any.whl"
    (root / "requirements.txt").write_text(f"six==1.16.0\n{unused}\n{extra_requirement}")
    return root


def _channel(name: str, index: _Index, home: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Put the credential into one input channel; the password the index must then see."""
    password = f"{SENTINEL}-{name}"
    if name == "env-index-url":
        monkeypatch.setenv("PIP_INDEX_URL", index.url(password))
    elif name == "env-extra-index-url":
        monkeypatch.setenv("PIP_INDEX_URL", index.url(f"{SENTINEL}-index"))
        monkeypatch.setenv("PIP_EXTRA_INDEX_URL", index.url(password, root="extra"))
    elif name == "pip-config":
        config = home / "pip.conf"
        config.write_text(f"[global]\nindex-url = {index.url(password)}\n")
        monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    elif name == "netrc":
        netrc = home / ".netrc"
        netrc.write_text(f"machine 127.0.0.1\nlogin {USER}\npassword {password}\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("PIP_INDEX_URL", index.url())
    return password


def _assert_clean(what: str, data: str | bytes) -> None:
    found = (SENTINEL.encode() if isinstance(data, bytes) else SENTINEL) in data
    assert not found, f"the sentinel credential is in {what}"


def _assert_image_clean(engine: DockerEngine, image_id: str) -> None:
    """The image's config (labels: the manifest) and every byte of ``docker save`` (layers are uncompressed tars)."""
    _assert_clean("the image config", json.dumps(engine.inspect_image(image_id)))
    tail = b""
    size = 0
    for chunk in engine.save(image_id):
        _assert_clean("docker save of the image", tail + chunk)
        tail = chunk[-len(SENTINEL) :]
        size += len(chunk)
    assert size > 1_000_000  # the whole image was read


@pytest.mark.parametrize("channel", ["env-index-url", "env-extra-index-url", "pip-config", "netrc"])
def test_B17_a_sentinel_credential_in_any_channel_never_leaves_it(
    channel: str,
    index: _Index,
    pip_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    run_cli: CLI,
    engine: DockerEngine,
) -> None:
    password = _channel(channel, index, pip_env, monkeypatch)
    root = _project(tmp_path / "proj", index)
    runs = {"lock": run_cli("lock", str(root))}
    assert runs["lock"].code == OK, runs["lock"].err
    assert password in index.passwords  # the channel's credential really reached the index
    runs["lock --json"] = run_cli("lock", str(root), "--json", "--upgrade")
    for command, extra in (("dockerfile", []), ("build", ["--keep-context"])):
        runs[command] = run_cli(command, str(root), "--base-image", BASE_IMAGE, *extra)
        runs[f"{command} --json"] = run_cli(command, str(root), "--base-image", BASE_IMAGE, "--json")
    images = set()
    try:
        for command, run in runs.items():
            assert run.code == OK, (command, run.err)
            _assert_clean(f"the output of {command}", run.out + run.err)
        if channel == "env-extra-index-url":
            assert "extra index configured (http://***@127.0.0.1" in runs["lock"].err  # the warning, masked
        (image,) = json.loads(runs["build --json"].out)["images"]
        images.update(image["tags"])
        for inspect in (run_cli("inspect", image["image_id"]), run_cli("inspect", image["image_id"], "--json")):
            assert inspect.code == OK, inspect.err
            _assert_clean("the output of inspect", inspect.out + inspect.err)
        _assert_clean("the lock", (root / "slimbuild.lock").read_bytes())
        _assert_clean("the manifest beside the project", Path(image["manifest"]).read_bytes())
        _assert_clean("the build-context tar", (root / ".slimbuild-context.tar").read_bytes())
        _assert_image_clean(engine, image["image_id"])
    finally:
        for tag in images:
            engine.client.remove_image(tag, force=True)


def test_B17_channels_that_fail_by_design_name_no_credential(
    index: _Index, pip_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli: CLI
) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", index.url(f"{SENTINEL}-index"))
    lines = (
        f"{index.url(SENTINEL + '-req')}../files/{SIX}\n",  # a direct URL, the line as pip takes it
        f"six @ {index.url(SENTINEL + '-pep508')}../files/{SIX}\n",
        f"-e git+http://{USER}:{SENTINEL}-vcs@127.0.0.1:{index.port}/r.git#egg=six\n",
        f"git+http://{SENTINEL}-token@127.0.0.1:{index.port}/r.git@v1#egg=six\n",
    )
    for n, line in enumerate(lines):
        root = _project(tmp_path / f"url{n}", index, extra_requirement=line)
        for args in (["lock"], ["dockerfile", "--base-image", BASE_IMAGE], ["build", "--base-image", BASE_IMAGE]):
            for as_json in ([], ["--json"]):
                run = run_cli(args[0], str(root), *args[1:], *as_json)
                assert run.code == RESOLUTION and "cannot hash-lock" in run.err, (line, args, run.err)  # C8
                _assert_clean(f"the failure of {args[0]} {as_json} on {line!r}", run.out + run.err)
        assert not (root / "slimbuild.lock").exists()
    # An index that does not answer: pip's failure, reported with the URL, must not carry its password.
    monkeypatch.setenv("PIP_INDEX_URL", f"http://{USER}:{SENTINEL}-down@127.0.0.1:9/simple/")
    root = _project(tmp_path / "down", index)
    for as_json in ([], ["--json"]):
        run = run_cli("lock", str(root), *as_json)
        assert run.code == RESOLUTION, run.err
        assert "127.0.0.1:9" in run.out + run.err
        _assert_clean("the failure of lock on an unreachable index", run.out + run.err)
