"""A real HTTP server on 127.0.0.1 serving feeds (and pages) for tests: ETag / Last-Modified
(304), gzip, redirects, error statuses, slow-drip bodies, a pause before answering; it counts
the requests it serves at once (`peak`). Runs in a thread; port chosen by the OS."""

from __future__ import annotations

import gzip
import hashlib
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: bool = True  # send an ETag and honour If-None-Match
    gzip: bool = False  # compress when the client accepts gzip
    redirect: str | None = None  # Location for a 301
    drip: float = 0.0  # seconds between 1-byte writes (slow server)
    delay: float = 0.0  # seconds before the response starts (a busy server)
    endless: bool = False  # the body, then zeros for ever (no Content-Length)
    pause: float = 0.0  # seconds before answering (a slow page, to see requests overlap)
    headers: dict[str, str] = field(default_factory=dict)
    # Held until set (at most 30 s): requests pile up at the server, so a test can see who
    # asked before anyone is answered. Arrivals are in FeedServer.arrived.
    gate: threading.Event | None = None


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    status: int


class _Server(ThreadingHTTPServer):
    # A daemon opens dozens of connections at once; the default backlog of 5 would make the
    # kernel drop the rest for a second and turn short timeouts into false failures.
    request_queue_size = 128


class FeedServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        self.arrived: list[dict[str, str]] = []  # the headers of each request, as it arrives
        self.serving = 0  # requests being answered now
        self.peak = 0  # the most answered at once
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.serving += 1
                    server.peak = max(server.peak, server.serving)
                try:
                    server._serve(self)
                finally:
                    with server._lock:
                        server.serving -= 1

        self._httpd = _Server((host, 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def __enter__(self) -> FeedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def hits(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        route = self.routes.get(h.path.split("?", 1)[0])
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self.arrived.append(headers)
        if route is not None and route.gate is not None:
            route.gate.wait(30)
        if route is not None and route.delay:
            time.sleep(route.delay)
        status = 404 if route is None else route.status
        body = b"" if route is None else route.body
        extra: dict[str, str] = {} if route is None else dict(route.headers)
        if route is not None and route.redirect:
            status, extra["Location"] = 301, route.redirect
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if route is not None and route.etag and status == 200:
            extra["ETag"] = etag
            if headers.get("if-none-match") == etag:
                status, body = 304, b""
        if route is not None and route.gzip and "gzip" in headers.get("accept-encoding", ""):
            body = gzip.compress(body)
            extra["Content-Encoding"] = "gzip"
        with self._lock:
            self.requests.append(Request(h.path, headers, status))
        if route is not None and route.pause:
            time.sleep(route.pause)  # the server is slow on purpose, not the test waiting
        h.send_response(status)
        if route is not None:
            h.send_header("Content-Type", route.content_type)
        for k, v in extra.items():
            h.send_header(k, v)
        endless = route is not None and route.endless
        if endless:
            h.send_header("Connection", "close")
        else:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            if endless:
                h.wfile.write(body)
                zeros = b"\0" * 65536
                while True:  # until the client hangs up
                    h.wfile.write(zeros)
            elif route is not None and route.drip:
                for i in range(len(body)):
                    h.wfile.write(body[i : i + 1])
                    h.wfile.flush()
                    time.sleep(route.drip)  # the server is slow on purpose, not the test waiting
            else:
                h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
