"""``ssh://`` engines reached as the docker CLI reaches them: one ``ssh … docker system dial-stdio`` per connection.

docker-py's own ssh transport needs paramiko (which reads ``~/.ssh/config`` but not the agent's or the ssh binary's
full configuration) or, with ``use_ssh_client``, still imports paramiko, opens a new ``ssh`` for every request and
lets ssh's errors through to the terminal. Here the connection is a socket pair whose other end is the ``ssh``
process's stdin and stdout (engine_host.ssh_command: the CLI's arguments), so urllib3 pools it like a unix socket;
ssh's stderr is kept, for the one line that says why the engine cannot be reached (``failure``). Every ``ssh``
started is ended by ``close`` (the engine's), and each runs in its own session, so a terminal's Ctrl-C reaches
slimbuild, which then cleans up through it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import IO, Any

import docker
import urllib3.connection
import urllib3.connectionpool
from docker.transport.basehttpadapter import BaseHTTPAdapter

from slimbuild.errors import EngineUnavailable
from slimbuild.image.build_stream import one_line

_STDERR_TAIL = 4096
# docker-py drops these before it runs ssh: a Python's own library path or CA file is not ssh's
_DROPPED_ENV = ("LD_LIBRARY_PATH", "SSL_CERT_FILE")


class SSHDialer:
    """Starts the ssh processes, remembers them and their stderr, ends them."""

    def __init__(self, url: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.url = url
        self.argv = list(argv)
        self.env = {k: v for k, v in env.items() if k not in _DROPPED_ENV}
        self._procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        self._lock = threading.Lock()
        # an engine never closed (a command's pipeline drops it, or the process exits) still ends its ssh processes
        self._finalizer = weakref.finalize(self, _end, self._procs)

    def dial(self, timeout: float | None) -> socket.socket:
        """A connected socket: ours is one end of a pair, ssh's stdin and stdout the other."""
        ours, theirs = socket.socketpair()
        err = tempfile.TemporaryFile()
        try:
            end = theirs.fileno()
            proc = subprocess.Popen(self.argv, stdin=end, stdout=end, stderr=err, env=self.env, start_new_session=True)
        except OSError as exc:
            ours.close()
            err.close()
            raise EngineUnavailable(
                f"cannot reach the Docker daemon at {self.url}: cannot run ssh ({exc.strerror or exc})",
                "install the OpenSSH client (Debian: openssh-client), or point DOCKER_HOST at another engine",
            ) from None
        finally:
            theirs.close()
        ours.settimeout(timeout)
        with self._lock:
            self._reap()
            self._procs.append((proc, err))
        return ours

    def _reap(self) -> None:
        """Forget the ssh processes that have ended cleanly (their connections closed); keep the failed ones' stderr."""
        keep = []
        for proc, err in self._procs:
            if proc.poll() == 0:
                err.close()
            else:
                keep.append((proc, err))
        self._procs[:] = keep  # in place: the finalizer holds this list

    def failure(self, wait: float = 5.0) -> str:
        """Why the last ssh failed, from its stderr (waiting a moment for it to end): '' when it did not fail."""
        with self._lock:
            procs = list(self._procs)
        for proc, err in reversed(procs):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
            if proc.returncode in (None, 0):
                continue
            err.seek(max(0, os.fstat(err.fileno()).st_size - _STDERR_TAIL))
            lines = [line.strip() for line in err.read().decode("utf-8", "replace").splitlines() if line.strip()]
            reason = lines[-1] if lines else "no message"
            return one_line(f"ssh exited with status {proc.returncode}: {reason}")
        return ""

    def close(self) -> None:
        """End every ssh still running (SIGTERM, then SIGKILL) and forget them."""
        with self._lock:
            self._finalizer()


def _end(procs: list[tuple[subprocess.Popen[bytes], IO[bytes]]]) -> None:
    taken = list(procs)
    procs.clear()
    for proc, _ in taken:
        if proc.poll() is None:
            proc.terminate()
    for proc, err in taken:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        err.close()


class _SSHConnection(urllib3.connection.HTTPConnection):
    def __init__(self, dialer: SSHDialer, timeout: Any) -> None:
        super().__init__("localhost", timeout=timeout)
        self._dialer = dialer

    def connect(self) -> None:
        timeout = self.timeout if isinstance(self.timeout, int | float) else None
        self.sock = self._dialer.dial(timeout)


class _SSHPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, dialer: SSHDialer, timeout: Any, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self._dialer = dialer

    def _new_conn(self) -> _SSHConnection:
        return _SSHConnection(self._dialer, self.timeout)


class SSHAdapter(BaseHTTPAdapter):  # type: ignore[misc]
    """The requests adapter of an ``ssh://`` engine: one pool of ssh-backed connections."""

    def __init__(self, dialer: SSHDialer, timeout: Any, max_pool_size: int = 10) -> None:
        super().__init__()
        self.dialer = dialer
        self._pool = _SSHPool(dialer, timeout, max_pool_size)

    def get_connection(self, url: Any, proxies: Any = None) -> _SSHPool:
        return self._pool

    def request_url(self, request: Any, proxies: Any) -> str:
        return str(request.path_url)

    def close(self) -> None:
        super().close()
        self._pool.close()
        self.dialer.close()


def ssh_client(url: str, argv: Sequence[str], env: Mapping[str, str], **kwargs: Any) -> tuple[Any, SSHDialer]:
    """A docker.APIClient whose every connection is ``argv`` (the CLI's ssh command), and its dialer."""
    timeout = kwargs.get("timeout", 60)
    client = docker.APIClient(base_url="unix:///slimbuild-ssh-engine.sock", **kwargs)  # a placeholder, never dialled
    dialer = SSHDialer(url, argv, env)
    adapter = SSHAdapter(dialer, timeout)
    client.mount("http+docker://", adapter)
    client._custom_adapter = adapter
    return client, dialer
