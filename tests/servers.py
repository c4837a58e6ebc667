"""Real servers for tests, on 127.0.0.1 only: a webhook receiver and an SMTP server.

Both run in a background thread, pick a free port (bound before the thread starts, so there
is no race), record what they receive, and are context managers:

    with WebhookReceiver(secret=SECRET, responses=[500, 200]) as hook:
        ... send to hook.url ...
        [first, second] = hook.wait_for(2)
        assert second.verified

    with SMTPServer(starttls=True, auth={"alerts": "pw"}) as smtp:
        ... send to smtp.host, smtp.port, tls_context=smtp.client_context() ...
        [mail] = smtp.wait_for(1)

`wait_for` polls with a deadline and raises AssertionError naming what did arrive; use
`await x.wait_for_async(n)` when the sender runs on the same event loop as the test.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email.policy
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar, cast

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from standardwebhooks import Webhook

from monitor.models import AlertMessage

LOOPBACK = "127.0.0.1"

T = TypeVar("T")


class _Recorder(Generic[T]):
    """A thread-safe list that tests can wait on."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._cond = threading.Condition()

    def add(self, item: T) -> None:
        with self._cond:
            self._items.append(item)
            self._cond.notify_all()

    def snapshot(self) -> list[T]:
        with self._cond:
            return list(self._items)

    def wait_for(self, n: int, timeout: float, what: str) -> list[T]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._items) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {n} {what} within {timeout}s, got {len(self._items)}: "
                        f"{self._items!r}"
                    )
                self._cond.wait(left)
            return list(self._items)

    async def wait_for_async(self, n: int, timeout: float, what: str) -> list[T]:
        deadline = time.monotonic() + timeout
        while len(self.snapshot()) < n:
            if time.monotonic() >= deadline:
                return self.wait_for(n, 0, what)  # raises with the details
            await asyncio.sleep(0.01)
        return self.snapshot()


# --- webhook receiver ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP response. `delay` seconds pass before it is sent."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any  # parsed body, None when it is not JSON
    verified: bool  # standardwebhooks.Webhook(secret).verify passed (False without secret)
    verify_error: str | None
    reply: int  # the status we answered


class _HTTPServer(ThreadingHTTPServer):
    request_queue_size = 128  # many sends at once must not wait on the kernel's backlog


class WebhookReceiver:
    """A real HTTP server that verifies Standard Webhooks signatures on every request.

    `responses` are answered in order (an int is a status; a Reply says more); when they run
    out every request gets `default`. `script()` replaces the queue while running.
    """

    def __init__(
        self,
        secret: str | None = None,
        responses: Iterable[int | Reply] = (),
        *,
        default: int | Reply = 200,
        path: str = "/hook",
    ) -> None:
        self.secret = secret
        self.path = path
        self._default = _reply(default)
        self._queue: list[Reply] = [_reply(r) for r in responses]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._requests: _Recorder[ReceivedRequest] = _Recorder()
        self._server = _HTTPServer((LOOPBACK, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}{self.path}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self._requests.snapshot()

    def script(self, *responses: int | Reply) -> None:
        with self._lock:
            self._queue = [_reply(r) for r in responses]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        return self._requests.wait_for(n, timeout, "webhook requests")

    async def wait_for_async(self, n: int, timeout: float = 5.0) -> list[ReceivedRequest]:
        return await self._requests.wait_for_async(n, timeout, "webhook requests")

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.pop(0) if self._queue else self._default

    def _verify(self, body: bytes, headers: dict[str, str]) -> tuple[bool, str | None]:
        if self.secret is None:
            return False, "no secret configured"
        try:
            Webhook(self.secret).verify(body, headers)
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "WebhookReceiver/1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = None
                verified, error = receiver._verify(body, headers)
                reply = receiver._next_reply()
                receiver._requests.add(
                    ReceivedRequest(
                        method="POST",
                        path=self.path,
                        headers=headers,
                        body=body,
                        json=parsed,
                        verified=verified,
                        verify_error=error,
                        reply=reply.status,
                    )
                )
                if reply.delay and receiver._stopping.wait(reply.delay):
                    return  # shutting down
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_GET(self) -> None:
                self.send_error(405)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _reply(r: int | Reply) -> Reply:
    return Reply(status=r) if isinstance(r, int) else r


# --- SMTP server ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage  # parsed with email.policy.default
    tls: bool  # the session was encrypted (STARTTLS or implicit TLS) when DATA came
    login: str | None  # who authenticated, if anyone


@dataclass(frozen=True)
class AuthAttempt:
    mechanism: str
    login: str | None
    tls: bool
    success: bool


def _is_tls(server: SMTP, session: Session) -> bool:
    if session.ssl is not None:
        return True
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _Handler:
    def __init__(self, owner: SMTPServer) -> None:
        self.owner = owner

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        reply = self.owner._next_reply()
        if reply.startswith("250"):
            message = cast(EmailMessage, BytesParser(policy=email.policy.default).parsebytes(raw))
            self.owner._messages.add(
                ReceivedMail(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=list(envelope.rcpt_tos),
                    raw=raw,
                    message=message,
                    tls=_is_tls(server, session),
                    login=self.owner._logins.get(id(session)),
                )
            )
        return reply


class _LoopbackController(Controller):
    """aiosmtpd's Controller on a socket bound before start (port 0: a free port)."""

    def __init__(
        self, handler: Any, *, ssl_context: ssl.SSLContext | None, port: int = 0, **kw: Any
    ) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((LOOPBACK, port))
        self._sock.listen(32)
        port = self._sock.getsockname()[1]
        super().__init__(handler, hostname=LOOPBACK, port=port, ssl_context=ssl_context, **kw)

    def _create_server(self) -> Any:
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class SMTPServer:
    """A real SMTP server (aiosmtpd) collecting parsed messages.

    starttls:          offer STARTTLS, with a certificate from a CA made for this server
    implicit_tls:      TLS from the first byte (like port 465)
    auth:              {login: password}; AUTH PLAIN/LOGIN offered (after TLS only, unless
                       auth_require_tls=False: a trap for clients that would log in in the
                       clear; every attempt is recorded in `auth_attempts`)
    replies:           scripted answers to DATA ("451 4.3.0 try later", "554 5.7.1 no"),
                       then "250 OK"; only accepted messages are recorded
    """

    def __init__(
        self,
        *,
        starttls: bool = False,
        implicit_tls: bool = False,
        auth: dict[str, str] | None = None,
        auth_require_tls: bool = True,
        require_starttls: bool = False,
        replies: Iterable[str] = (),
        port: int = 0,
    ) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert(LOOPBACK, "localhost")
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(server_ctx)
        self._auth = auth
        self._logins: dict[int, str] = {}
        self._replies = list(replies)
        self._lock = threading.Lock()
        self._messages: _Recorder[ReceivedMail] = _Recorder()
        self._auth_attempts: _Recorder[AuthAttempt] = _Recorder()
        # With implicit TLS aiosmtpd does not know the session is encrypted: it would
        # never offer AUTH if told to wait for TLS.
        kw: dict[str, Any] = {"auth_require_tls": auth_require_tls and not implicit_tls}
        if starttls:
            kw["tls_context"] = server_ctx
            kw["require_starttls"] = require_starttls
        if auth is not None:
            kw["authenticator"] = self._authenticate
        self._controller = _LoopbackController(
            _Handler(self), ssl_context=server_ctx if implicit_tls else None, port=port, **kw
        )

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return int(self._controller.port)

    @property
    def messages(self) -> list[ReceivedMail]:
        return self._messages.snapshot()

    @property
    def auth_attempts(self) -> list[AuthAttempt]:
        return self._auth_attempts.snapshot()

    def client_context(self) -> ssl.SSLContext:
        """A client SSLContext that trusts this server's CA (certificate checks stay on)."""
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx

    def wait_for(self, n: int, timeout: float = 5.0) -> list[ReceivedMail]:
        return self._messages.wait_for(n, timeout, "messages")

    async def wait_for_async(self, n: int, timeout: float = 5.0) -> list[ReceivedMail]:
        return await self._messages.wait_for_async(n, timeout, "messages")

    def _next_reply(self) -> str:
        with self._lock:
            return self._replies.pop(0) if self._replies else "250 OK"

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        login = password = None
        if isinstance(data, LoginPassword):
            login = data.login.decode("utf-8", "replace")
            password = data.password.decode("utf-8", "replace")
        ok = bool(self._auth and login in self._auth and self._auth[login] == password)
        self._auth_attempts.add(AuthAttempt(mechanism, login, _is_tls(server, session), ok))
        if ok and login is not None:
            self._logins[id(session)] = login
        return AuthResult(success=ok, handled=False)

    def start(self) -> SMTPServer:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SMTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- a sample alert ------------------------------------------------------------------------


def make_alert(**changes: Any) -> AlertMessage:
    """An AlertMessage like the seed demo's (the dprk-missile rule on the Press TV story);
    keyword arguments replace fields."""
    base = AlertMessage(
        id="01J0ALERT7QK3Z",
        created_at=dt.datetime(2019, 6, 18, 16, 5, 7, 123456, tzinfo=dt.UTC),
        rule_id="dprk-missile",
        rule_name="North Korea missile activity",
        severity="high",
        title="North Korea fires short-range missiles into sea",
        url="https://www.presstv.com/Detail/2019/06/18/598851/North-Korea-missiles",
        source="Iran Press TV",
        feed="gs-wmd",
        published_at=dt.datetime(2019, 6, 18, 16, 1, tzinfo=dt.UTC),
        summary="North Korea has fired a series of short-range missiles.\nSeoul says so.",
        terms=("north korea", "missile"),
        snippet="…North Korea has fired a series of short-range «missiles» into…",
        also_reported_by=(),
    )
    return dataclasses.replace(base, **changes)
