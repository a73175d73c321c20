"""A second, private dockerd on 127.0.0.1 with TLS (trustme certificates), for the remote-engine tests (M11-M13).

It has its own data root, exec root (so its own containerd, which dockerd starts there), pidfile and an empty
daemon config file; no bridge, no iptables. The first engine is only read (``docker save`` of the test base).
Everything it leaves is removed at ``stop``: its processes (found by its exec root, by pid), mounts and files.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from slimbuild.errors import EngineUnavailable
from slimbuild.image.engine import DockerEngine, connect

DOCKERD = shutil.which("dockerd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_client_certs(directory: Path, ca: trustme.CA, cert: trustme.LeafCert) -> Path:
    """DOCKER_CERT_PATH layout: ca.pem, cert.pem, key.pem."""
    directory.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    return directory


@dataclass
class RemoteDaemon:
    """One private dockerd; ``env`` points the docker CLI and slimbuild at it."""

    root: Path
    storage_driver: str
    port: int = field(default_factory=free_port)
    ca: trustme.CA = field(default_factory=trustme.CA)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.certs = write_client_certs(self.root / "client", self.ca, self.ca.issue_cert("slimbuild-test-client"))
        self.write_server_cert()
        (self.root / "daemon.json").write_text("{}\n", encoding="utf-8")

    def write_server_cert(
        self, *, not_before: datetime.datetime | None = None, not_after: datetime.datetime | None = None
    ) -> None:
        """The daemon's certificate (read at ``start``), for 127.0.0.1, valid now unless the dates say otherwise."""
        dates = {k: v for k, v in (("not_before", not_before), ("not_after", not_after)) if v is not None}
        server = self.ca.issue_cert("127.0.0.1", **dates)  # not "localhost": tcp://localhost:PORT is a hostname mismatch
        server.cert_chain_pems[0].write_to_path(str(self.root / "server-cert.pem"))
        server.private_key_pem.write_to_path(str(self.root / "server-key.pem"))

    @contextlib.contextmanager
    def serving_cert(self, *, not_before: datetime.datetime, not_after: datetime.datetime) -> Iterator[None]:
        """The daemon restarted with a server certificate of these dates (listening, not checked); valid again after."""
        self.stop()
        self.write_server_cert(not_before=not_before, not_after=not_after)
        try:
            self._spawn()
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    break
                except OSError:
                    if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the second dockerd did not listen") from None
                    time.sleep(0.2)
            yield
        finally:
            self.stop()
            self.write_server_cert()
            self.start().close()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.url, "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(self.certs)}

    def expired_client_certs(self) -> Path:
        past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
        cert = self.ca.issue_cert("slimbuild-test-client", not_before=past - datetime.timedelta(days=2), not_after=past)
        return write_client_certs(self.root / "expired", self.ca, cert)

    def start(self, timeout: float = 60) -> DockerEngine:
        self._spawn()
        assert self.proc is not None
        r = self.root
        deadline = time.monotonic() + timeout
        while True:
            try:
                return connect(self.env, timeout=30)
            except EngineUnavailable as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = (r / "dockerd.log").read_text(errors="replace")[-1500:]
                    raise RuntimeError(f"the second dockerd did not start ({exc.one_line()}): {tail}") from None
                time.sleep(0.3)

    def _spawn(self) -> None:
        assert DOCKERD is not None
        r = self.root
        argv = [
            DOCKERD, f"--config-file={r / 'daemon.json'}", f"--data-root={r / 'data'}", f"--exec-root={r / 'exec'}",
            f"--pidfile={r / 'dockerd.pid'}", f"-H={self.url}", "--tlsverify", f"--tlscacert={self.certs / 'ca.pem'}",
            f"--tlscert={r / 'server-cert.pem'}", f"--tlskey={r / 'server-key.pem'}", "--bridge=none",
            "--iptables=false", "--ip6tables=false", "--shutdown-timeout=2", f"--storage-driver={self.storage_driver}",
        ]  # fmt: skip
        log = (r / "dockerd.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()

    def kill(self, containers: list[str]) -> None:
        """SIGKILL dockerd (a crash or a dropped remote host), then end what it left running (by pid).

        ``containers``: the ids of its running containers, whose processes outlive their killed shims.
        """
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._end_leftovers()
        for container in containers:
            cgroups = Path("/sys/fs/cgroup")
            for procs in [*cgroups.glob(f"*/docker/{container}/cgroup.procs"), *cgroups.glob(f"docker/{container}/cgroup.procs")]:
                for pid in procs.read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._end_leftovers()

    def _end_leftovers(self) -> None:
        """Its containerd and shims (their command lines name our exec root), then its mounts."""
        marker = str(self.root / "exec").encode()
        for _ in range(50):
            pids = [pid for pid in _pids() if marker in _cmdline(pid)]
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        # a killed containerd can linger as a zombie under its pid: dockerd would take it for running, and wait for it
        (self.root / "exec" / "containerd" / "containerd.pid").unlink(missing_ok=True)
        prefix = str(self.root) + "/"
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1].startswith(prefix)]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def new_root() -> Path:
    """A short private directory (containerd's unix socket paths must stay under 108 bytes)."""
    return Path(tempfile.mkdtemp(prefix="sb-remote-", dir="/tmp"))
