"""A private sshd on 127.0.0.1 for the ``ssh://`` engine tests (M15, M16); the system's sshd is never touched.

Its own host key, config, pid and log files, an authorized key the test makes, an unprivileged port. The client
side is as private: an ssh config naming the test's key and a known_hosts the test writes (StrictHostKeyChecking
yes, BatchMode), used through an ``ssh`` on the test's PATH that adds ``-F`` to the real one (OpenSSH reads
``~/.ssh`` from the passwd entry, not $HOME, so this is how a test gives it a configuration of its own). The
sessions' environment (``SetEnv``) points their ``docker system dial-stdio`` at the engine the test chooses.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.docker.remote_daemon import free_port

SSHD = "/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None
SSH = shutil.which("ssh")
PRIVSEP_DIR = Path("/run/sshd")  # compiled into Debian's sshd; its init script makes it, as this does


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "slimbuild-test", "-f", str(path)], check=True)


@dataclass
class SSHServer:
    root: Path
    session_env: Mapping[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        r = self.root
        _keygen(r / "host_key")
        _keygen(r / "client_key")
        _keygen(r / "other_key")  # a key sshd does not know
        (r / "authorized_keys").write_bytes((r / "client_key.pub").read_bytes())
        setenv = " ".join(f"{k}={v}" for k, v in self.session_env.items())
        (r / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {r / 'host_key'}\nPidFile {r / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {r / 'authorized_keys'}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAllowUsers root\nLogLevel VERBOSE\n"
            + (f"SetEnv {setenv}\n" if setenv else ""),
            encoding="utf-8",
        )
        host_key = " ".join((r / "host_key.pub").read_text(encoding="utf-8").split()[:2])
        (r / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_key}\n", encoding="utf-8")
        self.bin = r / "bin"
        self.bin.mkdir()
        self.client_config("ssh_config", r / "client_key")
        self.client_config("ssh_config_other", r / "other_key")

    def client_config(self, name: str, key: Path) -> Path:
        path = self.root / name
        path.write_text(
            f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
            f"  UserKnownHostsFile {self.root / 'known_hosts'}\n"
            "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
            encoding="utf-8",
        )
        return path

    def env(self, *, config: str = "ssh_config", port: int | None = None) -> dict[str, str]:
        """DOCKER_HOST at this sshd, and a PATH whose ``ssh`` uses the test's client configuration ``config``."""
        wrapper = self.root / f"bin-{config}" / "ssh"
        if not wrapper.exists():
            wrapper.parent.mkdir()
            wrapper.write_text(f'#!/bin/sh\nexec {SSH} -F {self.root / config} "$@"\n', encoding="utf-8")
            wrapper.chmod(0o755)
        path = f"{wrapper.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        return {"DOCKER_HOST": f"ssh://root@127.0.0.1:{port or self.port}", "PATH": path}

    def start(self, timeout: float = 20) -> None:
        assert SSHD is not None
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        argv = [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")]
        log = (self.root / "sshd.log").open("ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the test sshd did not start: {self.log()[-1500:]}") from None
                time.sleep(0.1)

    def log(self) -> str:
        return (self.root / "sshd.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
