"""DockerEngine against the real engine: faults injected for real (RELIABILITY E1-E5, E10, F1, F8)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from slimbuild.errors import BuildFailed, EngineUnavailable, Interrupted, NoSuchImage
from slimbuild.image.build_stream import ProgressEvent
from slimbuild.image.engine import DockerEngine, RunOutcome, connect
from tests.constants import BUILD, ENGINE, INTERRUPTED
from tests.docker.conftest import BASE_IMAGE, TEST_LABELS, Build, make_context

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
FAKE_ID = "sha256:" + "ab" * 32


def _all_tags(engine: DockerEngine) -> set[str]:
    return {tag for image in engine.client.images() for tag in image.get("RepoTags") or () if tag != "<none>:<none>"}


def _containers_with(engine: DockerEngine, marker: str) -> list[dict[str, Any]]:
    """Containers (running or not) whose command mentions marker."""
    return [c for c in engine.client.containers(all=True) if marker in str(c.get("Command", ""))]


# --------------------------------------------------------------------------- build


def test_build_tiny_image_untagged_with_id_from_aux(engine: DockerEngine, build: Build, nonce: str) -> None:
    events: list[ProgressEvent] = []
    outcome = build(f"RUN echo {nonce} > /hello\n", events=events)
    image = engine.inspect_image(outcome.image_id)
    assert image["Id"] == outcome.image_id
    assert image["RepoTags"] == []  # E10: build() never tags
    assert image["Config"]["Labels"]["slimbuild.test"] == "1"
    kinds = {e.kind for e in events}
    assert {"context", "step", "log"} <= kinds
    assert events[0].kind == "context" and events[0].bytes_sent == events[0].total_bytes
    assert engine.history(outcome.image_id)[0]["Id"] == outcome.image_id
    layers = b"".join(engine.save(outcome.image_id))
    with tarfile.open(fileobj=io.BytesIO(layers)) as tar:
        assert "manifest.json" in tar.getnames()


# --------------------------------------------------------------------------- E1 / E2 / E3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("host", ["tcp://127.0.0.1:{port}", "unix:///nonexistent.sock"], ids=["dead-tcp-port", "missing-socket"])
def test_E1_dead_docker_host_is_engine_unavailable(host: str) -> None:
    url = host.format(port=_free_port())
    started = time.monotonic()
    with pytest.raises(EngineUnavailable) as info:
        connect({"DOCKER_HOST": url}, timeout=5)
    err = info.value
    assert err.exit_code == ENGINE
    assert err.message.startswith(f"Docker daemon not reachable at {url}")
    assert "DOCKER_HOST" in err.hint and "\n" not in err.one_line()
    assert time.monotonic() - started < 5


def _nobody_pythonpath() -> Path:
    """A world-readable copy of slimbuild and its runtime imports (root's interpreter tree is private)."""
    dest = Path(tempfile.mkdtemp(prefix="slimbuild-e2-", dir="/tmp"))
    dest.chmod(0o755)
    for name in ("docker", "requests", "urllib3", "idna", "certifi", "charset_normalizer"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations
        shutil.copytree(next(iter(spec.submodule_search_locations)), dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    # the whole package, not a list of the modules engine.py imports today: that list fell behind three times
    shutil.copytree(ROOT / "slimbuild", dest / "slimbuild", ignore=shutil.ignore_patterns("__pycache__"))
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


E2_PROBE = """
import json
from slimbuild.image.engine import connect
from slimbuild.errors import SlimbuildError
try:
    connect({"DOCKER_HOST": "unix:///var/run/docker.sock"}, timeout=5)
except SlimbuildError as exc:
    print(json.dumps({"code": int(exc.exit_code), "message": exc.message, "hint": exc.hint}))
else:
    print(json.dumps({"code": 0}))
"""


def test_E2_socket_permission_denied_as_nobody(engine: DockerEngine) -> None:
    """The real thing: connect to the daemon's socket (root:docker 0660) as nobody, no supplementary groups."""
    python = "/usr/bin/python3"
    if os.geteuid() != 0 or not shutil.which("setpriv") or not os.path.exists(python):
        pytest.skip("needs root, setpriv and /usr/bin/python3 to drop to nobody")
    if engine.info().url != "unix:///var/run/docker.sock":
        pytest.skip("the engine under test is not the local socket")
    pythonpath = _nobody_pythonpath()
    try:
        proc = subprocess.run(
            ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", python, "-s", "-c", E2_PROBE],
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pythonpath), "HOME": "/nonexistent"},
            cwd="/",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        shutil.rmtree(pythonpath, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["code"] == ENGINE
    assert result["message"] == "permission denied connecting to the Docker daemon at unix:///var/run/docker.sock"
    assert "docker' group" in result["hint"] and "rootless" in result["hint"]
    assert "chmod" not in result["hint"] and "666" not in result["hint"]


class _OldEngine(BaseHTTPRequestHandler):
    """Answers like an Engine that only speaks API 1.24."""

    def do_GET(self) -> None:
        body = b"OK"
        kind = "text/plain"
        if self.path.endswith("/version"):
            body = json.dumps({"ApiVersion": "1.24", "MinAPIVersion": "1.12", "Version": "1.12.6", "Os": "linux"}).encode()
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Api-Version", "1.24")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def old_engine_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OldEngine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_E3_engine_api_too_old(old_engine_url: str) -> None:
    with pytest.raises(EngineUnavailable) as info:
        connect({"DOCKER_HOST": old_engine_url}, timeout=5)
    assert info.value.exit_code == ENGINE
    assert info.value.message.startswith("Engine API >= 1.41 required")
    assert "1.24" in info.value.message and old_engine_url in info.value.message
    assert info.value.hint


# --------------------------------------------------------------------------- E4 / E5


def test_E4_failing_run_is_build_failed_with_log_tail_and_no_tag(engine: DockerEngine, build: Build, nonce: str) -> None:
    before = _all_tags(engine)
    with pytest.raises(BuildFailed) as info:
        build(f"RUN echo first-{nonce} && echo second-{nonce} && exit 1\n")
    err = info.value
    assert err.exit_code == BUILD
    assert "returned a non-zero code: 1" in err.message
    assert f"first-{nonce} | second-{nonce}" in err.message
    assert "\n" not in err.one_line()
    for tag in _all_tags(engine) - before:  # other engineers may tag concurrently: only ours would carry the nonce
        assert nonce not in json.dumps(engine.inspect_image(tag)["Config"])
    assert _containers_with(engine, nonce) == []  # forcerm removed the failed step's container


def test_E5_confusing_log_lines_do_not_fool_the_image_id(engine: DockerEngine, build: Build, nonce: str) -> None:
    body = f"RUN echo Successfully built deadbeef && echo 'digest {FAKE_ID}' && echo {FAKE_ID} && echo {nonce}\n"
    outcome = build(body)
    assert outcome.image_id != FAKE_ID
    image = engine.inspect_image(outcome.image_id)
    assert image["Id"] == outcome.image_id
    assert nonce in json.dumps(engine.history(outcome.image_id))
    assert "Successfully built deadbeef" in outcome.log_tail


# --------------------------------------------------------------------------- E10


DRIVER = """
import sys
sys.path.insert(0, sys.argv[1])
from slimbuild.image.engine import connect
from slimbuild.errors import SlimbuildError

engine = connect()
context = open(sys.argv[2], "rb").read()
try:
    engine.build(context, labels={"slimbuild.test": "1", "slimbuild.test.session": sys.argv[3]},
                 on_progress=lambda e: print(e.kind, e.message, flush=True))
except SlimbuildError as exc:
    print("ERROR", type(exc).__name__, exc.one_line(), flush=True)
    sys.exit(int(exc.exit_code))
print("BUILT", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_E10_signal_during_build_cancels_it(engine: DockerEngine, nonce: str, tmp_path: Path, signum: int) -> None:
    ctx = tmp_path / "context.tar"
    ctx.write_bytes(make_context(f"FROM {BASE_IMAGE}\nRUN echo started-{nonce} && sleep 30 && echo done-{nonce}\n"))
    (tmp_path / "driver.py").write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py"), str(ROOT), str(ctx), TEST_LABELS["slimbuild.test.session"]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 10
        while not any(f"started-{nonce}" in line and not line.startswith("step") for line in seen):
            seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signum)
        code = proc.wait(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while not lines.empty():
        seen.append(lines.get())
    assert code == INTERRUPTED, "".join(seen)
    assert elapsed < 5
    assert any(line.startswith("ERROR Interrupted") for line in seen), "".join(seen)
    assert not any(line.startswith("BUILT") for line in seen)
    # The engine cancelled the build: its RUN container is killed and removed (forcerm) within seconds.
    deadline = time.monotonic() + 8
    while _containers_with(engine, nonce) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _containers_with(engine, nonce) == []
    assert not any(nonce in json.dumps(img.get("Labels") or {}) for img in engine.client.images(all=True))


@pytest.mark.parametrize("where", ["in-socket-read", "in-python-code"])
def test_E10_interrupt_in_process_closes_the_connection(engine: DockerEngine, build: Build, nonce: str, where: str) -> None:
    """The process stays alive (and pytest keeps the traceback, hence the response): only an explicit close cancels."""
    main = threading.main_thread().ident
    assert main is not None and threading.current_thread().ident == main

    def on_progress(event: ProgressEvent) -> None:
        if event.kind == "log" and event.message == f"started-{nonce}":
            if where == "in-python-code":
                raise KeyboardInterrupt  # as if SIGINT's handler ran here, outside urllib3's read
            threading.Timer(0.3, signal.pthread_kill, (main, signal.SIGINT)).start()

    started = time.monotonic()
    with pytest.raises(Interrupted) as info:
        context = make_context(f"FROM {BASE_IMAGE}\nRUN echo started-{nonce} && sleep 30\n")
        engine.build(context, labels=TEST_LABELS, on_progress=on_progress)
    assert info.value.exit_code == INTERRUPTED
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 8
    while _containers_with(engine, nonce) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _containers_with(engine, nonce) == []
    assert build(f"RUN echo after-{nonce}\n").image_id.startswith("sha256:")  # the engine object is still usable


def test_E10_tag_is_all_or_nothing(engine: DockerEngine, build: Build, nonce: str) -> None:
    outcome = build(f"RUN echo {nonce}\n")
    keep = f"slimbuild-test/engine-keep:{nonce}"
    new_ref, moved_ref = f"slimbuild-test/engine-tag:{nonce}", f"slimbuild-test/engine-moved:{nonce}"
    engine.tag(outcome.image_id, [keep])  # so the rollback cannot delete the image with its last tag
    base_id = engine.inspect_image(BASE_IMAGE)["Id"]
    engine.tag(base_id, [moved_ref])
    try:
        with pytest.raises(BuildFailed) as info:
            engine.tag(outcome.image_id, [new_ref, moved_ref, "slimbuild-test/INVALID:Upper"])
        assert info.value.exit_code == BUILD
        assert "INVALID" in info.value.message
        assert new_ref not in _all_tags(engine)
        assert engine.inspect_image(moved_ref)["Id"] == base_id  # the moved ref is back where it was
        engine.tag(outcome.image_id, [new_ref, moved_ref])
        assert engine.inspect_image(new_ref)["Id"] == engine.inspect_image(moved_ref)["Id"] == outcome.image_id
    finally:
        for ref in (keep, new_ref, moved_ref):
            try:
                engine.client.remove_image(ref, noprune=True)
            except Exception:  # noqa: BLE001
                pass


def test_remove_image_leaves_tagged_images_alone(engine: DockerEngine, build: Build, nonce: str) -> None:
    tagged = build(f"RUN echo tagged-{nonce}\n")
    ref = f"slimbuild-test/engine-remove:{nonce}"
    engine.tag(tagged.image_id, [ref])
    try:
        engine.remove_image(tagged.image_id)
        assert engine.inspect_image(ref)["Id"] == tagged.image_id
    finally:
        engine.client.remove_image(ref, noprune=True)
    untagged = build(f"RUN echo untagged-{nonce}\n")
    engine.remove_image(untagged.image_id)
    engine.remove_image(untagged.image_id)  # idempotent
    with pytest.raises(NoSuchImage, match="no such image"):
        engine.inspect_image(untagged.image_id)


# --------------------------------------------------------------------------- run (F1, F8)


@pytest.fixture
def image(build: Build, nonce: str) -> str:
    return build(f"RUN echo {nonce} > /built\n").image_id


def test_F1_F8_run_locked_down_as_numeric_user(engine: DockerEngine, image: str) -> None:
    assert engine.run(image, ["id", "-u"], user="10001:10001", timeout=30) == RunOutcome(0, "10001\n")
    # One stream (2>&1) so the order of the lines is the order of the commands.
    script = "{ touch /tmp/ok && echo tmp-writable; ls /sys/class/net; touch /x && echo root-writable; } 2>&1"
    result = engine.run(image, ["sh", "-c", script], user="10001:10001", timeout=30)
    assert result.output.splitlines() == ["tmp-writable", "lo", "touch: cannot touch '/x': Read-only file system"]
    assert result.exit_code == 1


def test_run_failing_smoke_returns_output_and_exit_code(engine: DockerEngine, image: str) -> None:
    argv = ["python3", "-c", "import sys; print('to stdout'); print('boom', file=sys.stderr); sys.exit(3)"]
    result = engine.run(image, argv, user="10001", timeout=30)
    assert result.exit_code == 3
    assert "to stdout" in result.output and "boom" in result.output
    assert engine.client.containers(all=True, filters={"ancestor": image}) == []  # always removed


def test_run_timeout_is_build_failed_and_container_removed(engine: DockerEngine, image: str) -> None:
    started = time.monotonic()
    with pytest.raises(BuildFailed, match="timed out after 1s") as info:
        engine.run(image, ["sleep", "30"], user="10001", timeout=1)
    assert info.value.exit_code == BUILD
    assert time.monotonic() - started < 10
    assert engine.client.containers(all=True, filters={"ancestor": image}) == []


def test_run_missing_command_is_build_failed(engine: DockerEngine, image: str) -> None:
    with pytest.raises(BuildFailed, match="no-such-binary"):
        engine.run(image, ["no-such-binary"], user="10001", timeout=30)
    assert engine.client.containers(all=True, filters={"ancestor": image}) == []
