"""A tiny HTTP proxy on 127.0.0.1 in front of the test registry: counts the bytes clients upload, and can answer
the first requests of a kind with a 500 (a registry answering 500, then success).

Not a registry: every request goes to the real one (``registry_server`` in conftest.py), the Host header as
sent, so the upload URLs the registry hands out point back at the proxy. Standard library only, so
``bench/bench_push.py`` uses it too.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class ProxyState:
    """What the proxy saw, and the faults still to inject: (method, path fragment) -> how many more 500s."""

    upstream: str
    faults: dict[tuple[str, str], int] = field(default_factory=dict)
    uploaded_bytes: int = 0
    failed: int = 0
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _read_body(handler: http.server.BaseHTTPRequestHandler) -> bytes:
    """The request body, as Content-Length or chunked transfer encoding sends it."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(parts)
    return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))


def _handler(state: ProxyState) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: object) -> None:
            pass

        def _forward(self) -> None:
            body = _read_body(self)
            with state.lock:
                state.uploaded_bytes += len(body)
                state.requests.append(f"{self.command} {self.path}")
                key = next((k for k, n in state.faults.items() if n > 0 and k[0] == self.command and k[1] in self.path), None)
                fail = key is not None
                if key is not None:
                    state.faults[key] -= 1
                    state.failed += 1
            if fail:
                self.send_response(500, "Internal Server Error")
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "22")
                self.end_headers()
                self.wfile.write(b"injected failure (500)")
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP and k.lower() != "content-length"}
            conn = http.client.HTTPConnection(state.upstream, timeout=120)
            try:
                conn.request(self.command, self.path, body=body if body or self.command in {"PUT", "PATCH", "POST"} else None,
                             headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in _HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    return Handler


@contextlib.contextmanager
def registry_proxy(
    upstream: str, *, faults: dict[tuple[str, str], int] | None = None
) -> Iterator[tuple[str, ProxyState]]:
    """(host:port of a proxy on 127.0.0.1 in front of UPSTREAM, its state), until the block ends.

    FAULTS: ``{("POST", "/blobs/uploads/"): 1}`` answers the first blob upload with a 500, and so on.
    """
    state = ProxyState(upstream, dict(faults or {}))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"{host if isinstance(host, str) else socket.gethostname()}:{port}", state
    finally:
        server.shutdown()
        server.server_close()
