"""HTTP fetching of feeds, bounded and polite. Input: a URL and the validators stored from the
last fetch; output: a FetchResult, or a FetchError subclass (see errors.py).

Bounds (SPEC "Safety"):
- one deadline for the whole fetch, redirects and a slow-drip body included (asyncio.timeout,
  not httpx's per-read timeouts, which a server sending one byte per second never trips);
- a body cap counted after decompression (a gzip bomb stops at max_bytes);
- at most `max_redirects` redirects, each to http/https only, each checked by the address guard;
- the address guard runs on the address actually connected: we resolve the name ourselves,
  refuse private, loopback, link-local, multicast and reserved addresses (cloud metadata
  169.254.169.254 included), and connect to the vetted address, so DNS rebinding between check
  and connect cannot slip through.
Politeness (RFC 9110/9111): conditional GET with If-None-Match / If-Modified-Since, a
User-Agent, Retry-After on 429/503 passed back so the scheduler can wait that long.
A local path (given in the config only, never from a redirect) is read from disk with the same cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import socket
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx

from monitor import __version__
from monitor.errors import (
    FetchBlocked,
    FetchError,
    FetchHTTPError,
    FetchTimeout,
    FetchTooLarge,
)
from monitor.web import parse_retry_after


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str  # the final URL after redirects (base for relative links)
    status: int  # 200, or 304 when not modified
    body: bytes | None  # None when not modified
    etag: str | None
    last_modified: str | None
    content_type: str | None
    elapsed: float

    @property
    def not_modified(self) -> bool:
        return self.body is None


@dataclass(frozen=True, slots=True)
class FetchLimits:
    timeout: float = 30.0
    max_bytes: int = 15_000_000
    max_redirects: int = 5
    concurrency: int = 50
    per_host: int = 2
    allow_private_networks: bool = False
    user_agent: str = f"monitor/{__version__}"


def is_local_path(url: str) -> bool:
    scheme = urlsplit(url).scheme.lower()
    return scheme in ("", "file") or len(scheme) == 1


def address_allowed(ip: str) -> bool:
    """Public unicast only: no private, loopback, link-local, multicast, reserved, unspecified
    (IPv4-mapped IPv6 addresses are judged by the IPv4 address they carry)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host, refuses disallowed addresses, connects to a vetted address."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = [str(info[4][0]) for info in infos]
        allowed = [a for a in addresses if address_allowed(a)]
        if not allowed:
            raise _Blocked(f"{host} resolves to a non-public address ({addresses[0]})")
        last: Exception | None = None
        for ip in allowed:
            try:
                stream = await self._inner.connect_tcp(
                    ip,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:
                last = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if peer and not address_allowed(peer[0]):
                await stream.aclose()
                raise _Blocked(f"{host} connected to a non-public address")
            return stream
        assert last is not None
        raise last

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise _Blocked("unix sockets are not fetched")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _Blocked(httpcore.ConnectError):
    """Raised inside httpcore; recognised by Fetcher and turned into FetchBlocked."""


def _transport(limits: FetchLimits) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(
        trust_env=False,  # an environment proxy would bypass the address guard
        limits=httpx.Limits(max_connections=limits.concurrency, max_keepalive_connections=20),
    )
    if not limits.allow_private_networks:
        pool = transport._pool
        pool._network_backend = _GuardedBackend(pool._network_backend)
    return transport


class Fetcher:
    """One shared client: connection reuse across feeds, global and per-host concurrency."""

    def __init__(
        self, limits: FetchLimits, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.limits = limits
        self._client = httpx.AsyncClient(
            transport=transport or _transport(limits),
            follow_redirects=False,
            headers={"User-Agent": limits.user_agent, "Accept": _ACCEPT},
            timeout=httpx.Timeout(limits.timeout),
            trust_env=False,
        )
        self._all = asyncio.Semaphore(limits.concurrency)
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(limits.per_host)
        )
        self._busy = 0  # fetches holding or waiting for a slot, all hosts
        self._busy_hosts: Counter[str] = Counter()

    async def aclose(self) -> None:
        await self._client.aclose()

    @contextlib.asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """A place among the fetches in flight (all hosts, and this URL's host). The caller
        may hold it across its own work and then fetch with in_slot=True."""
        if is_local_path(url):
            yield
            return
        host = _host(url)
        self._busy += 1
        self._busy_hosts[host] += 1
        try:
            async with self._all, self._hosts[host]:
                yield
        finally:
            self._busy -= 1
            self._busy_hosts[host] -= 1

    def admission(self) -> Callable[[str], bool]:
        """A gate for one batch of claims: True for each URL that can start fetching at once
        (counting the ones it already let through), False once the global or that host's
        limit would be passed. Local files are always let through."""
        picked: Counter[str] = Counter()
        total = [self._busy]

        def room(url: str) -> bool:
            if is_local_path(url):
                return True
            host = _host(url)
            if total[0] >= self.limits.concurrency:
                return False
            if self._busy_hosts[host] + picked[host] >= self.limits.per_host:
                return False
            picked[host] += 1
            total[0] += 1
            return True

        return room

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        in_slot: bool = False,
    ) -> FetchResult:
        if is_local_path(url):
            return await asyncio.to_thread(self._read_local, url, etag)
        async with contextlib.nullcontext() if in_slot else self.slot(url):
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.limits.timeout):
                    return await self._fetch_http(url, etag, last_modified, started)
            except TimeoutError:
                raise FetchTimeout(
                    f"no complete response within {self.limits.timeout:g}s"
                ) from None

    async def _fetch_http(
        self, url: str, etag: str | None, last_modified: str | None, started: float
    ) -> FetchResult:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        for _hop in range(self.limits.max_redirects + 1):
            _check_scheme(url)
            try:
                async with self._client.stream("GET", url, headers=headers) as resp:
                    if resp.status_code in _REDIRECTS:
                        location = resp.headers.get("Location")
                        if not location:
                            raise FetchHTTPError(
                                "redirect without Location", status=resp.status_code
                            )
                        url = urljoin(url, location)
                        continue
                    if resp.status_code == 304:
                        return self._result(url, resp, None, started)
                    if resp.status_code >= 400 or resp.status_code < 200:
                        raise FetchHTTPError(
                            f"HTTP {resp.status_code}",
                            status=resp.status_code,
                            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                        )
                    body = await self._read_capped(resp)
                    return self._result(url, resp, body, started)
            except _Blocked as exc:
                raise FetchBlocked(str(exc)) from None
            except httpx.TooManyRedirects as exc:  # pragma: no cover (we follow by hand)
                raise FetchHTTPError(str(exc)) from None
            except httpx.TimeoutException:
                raise FetchTimeout(f"timed out after {self.limits.timeout:g}s") from None
            except httpx.HTTPError as exc:
                if isinstance(exc.__cause__, _Blocked) or isinstance(exc.__context__, _Blocked):
                    raise FetchBlocked(str(exc.__cause__ or exc.__context__)) from None
                raise FetchError(f"{type(exc).__name__}: {exc}") from None
        raise FetchHTTPError(f"more than {self.limits.max_redirects} redirects")

    async def _read_capped(self, resp: httpx.Response) -> bytes:
        declared = resp.headers.get("Content-Length")
        plain = resp.headers.get("Content-Encoding") is None
        if plain and declared and declared.isdigit() and int(declared) > self.limits.max_bytes:
            raise FetchTooLarge(f"body of {declared} bytes exceeds {self.limits.max_bytes}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():  # decompressed: the cap applies after gzip
            size += len(chunk)
            if size > self.limits.max_bytes:
                raise FetchTooLarge(f"body exceeds {self.limits.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _result(url: str, resp: httpx.Response, body: bytes | None, started: float) -> FetchResult:
        return FetchResult(
            url=url,
            status=resp.status_code,
            body=body,
            etag=resp.headers.get("ETag"),
            last_modified=resp.headers.get("Last-Modified"),
            content_type=resp.headers.get("Content-Type"),
            elapsed=time.monotonic() - started,
        )

    def _read_local(self, url: str, etag: str | None) -> FetchResult:
        started = time.monotonic()
        path = Path(urlsplit(url).path if url.startswith("file:") else url)
        try:
            with path.open("rb") as fh:
                body = fh.read(self.limits.max_bytes + 1)
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
        if len(body) > self.limits.max_bytes:
            raise FetchTooLarge(f"file exceeds {self.limits.max_bytes} bytes")
        digest = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if etag == digest:
            return FetchResult(str(path), 304, None, etag, None, None, time.monotonic() - started)
        return FetchResult(str(path), 200, body, digest, None, None, time.monotonic() - started)


_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.5"
)


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _host(url: str) -> str:
    """The origin a per-host limit counts: host and port (two ports of one name are two
    servers, as aiohttp and browsers count them)."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or ''}:{parts.port or parts.scheme}"
    except ValueError:
        return ""


def _check_scheme(url: str) -> None:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise FetchBlocked(f"scheme {scheme or '(none)'!r} is not fetched; only http and https")
