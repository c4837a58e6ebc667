"""HTTP fetching of feeds and pages, bounded and polite. Input: a URL and the validators stored
from the last fetch; output: a FetchResult, or a FetchError subclass (see errors.py).

Bounds (SPEC "Safety"):
- one deadline for the whole fetch, redirects and a slow-drip body included (asyncio.timeout,
  not per-read timeouts, which a server sending one byte per second never trips);
- a body cap counted after decompression, as the decompressed chunks come (a gzip bomb stops
  at max_bytes; aiohttp inflates in 64 kB pieces, so memory stays near the cap);
- at most `max_redirects` redirects, each to http/https only, each checked by the guard;
- the private-network guard on the address actually connected (netguard.py).
Politeness (RFC 9110/9111): conditional GET with If-None-Match / If-Modified-Since; a
User-Agent that names monitor and its version; Retry-After on 429/503 passed back so the
scheduler waits that long; `Cache-Control: max-age` passed back (a floor for the next poll);
a permanent redirect (301/308 on every hop) passed back as `moved_to`.
A local path (given in the config only, never from a redirect) is read from disk with the same
cap.

Transport: aiohttp, directly (docs/design.md, "Fetching"): measured on 2,000 feeds beside raw
aiohttp, httpx's own pool managed 0.12 of its requests per second (a scan of every pooled
connection per request, a failed `import sniffio` per lock, connections closed as soon as
idle) and httpx over the httpx-aiohttp transport 0.62, with 16 MB decompressed chunks on a
gzip bomb and refused connections reported as timeouts. httpx stays the webhook channel's
client, where there are few requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp

from monitor import __version__
from monitor.errors import (
    FetchBlocked,
    FetchError,
    FetchHTTPError,
    FetchTimeout,
    FetchTooLarge,
)
from monitor.netguard import (
    GuardedResolver,
    address_allowed,
    blocked_in,
    guarded_socket_factory,
)
from monitor.web import parse_retry_after

__all__ = [
    "FetchLimits",
    "FetchResult",
    "Fetcher",
    "address_allowed",
    "host_of",
    "is_local_path",
]


@dataclass(frozen=True, slots=True)
class FetchResult:
    url: str  # the final URL after redirects (base for relative links)
    status: int  # 200, or 304 when not modified
    body: bytes | None  # None when not modified
    etag: str | None
    last_modified: str | None
    content_type: str | None
    elapsed: float
    max_age: float | None = None  # Cache-Control: max-age, seconds
    moved_to: str | None = None  # every redirect was permanent (301/308): the URL it ends at
    truncated: bool = False  # fetched with cut=True and the body was cut at max_bytes

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


# Memoized, like host_of: pure functions of the URL, asked of every feed at every claim
# (15,000 times a cycle of 2,000 feeds, two urlsplits each, on the writer's thread).
@functools.lru_cache(maxsize=8192)
def is_local_path(url: str) -> bool:
    scheme = urlsplit(url).scheme.lower()
    return scheme in ("", "file") or len(scheme) == 1


class Fetcher:
    """One shared session: connection reuse across feeds, global and per-host concurrency.
    The session is made on first use, inside the event loop that uses it."""

    def __init__(self, limits: FetchLimits) -> None:
        self.limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._all = asyncio.Semaphore(limits.concurrency)
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(limits.per_host)
        )
        self._busy = 0  # fetches holding or waiting for a slot, all hosts
        self._busy_hosts: Counter[str] = Counter()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            guard = not self.limits.allow_private_networks
            connector = aiohttp.TCPConnector(
                limit=self.limits.concurrency,
                limit_per_host=0,  # our own per-host slots (they also pace claims)
                resolver=GuardedResolver() if guard else None,
                socket_factory=guarded_socket_factory if guard else None,
                ttl_dns_cache=300,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # an environment proxy would bypass the guard
                cookie_jar=aiohttp.DummyCookieJar(),  # feeds are not sessions
                headers={"User-Agent": self.limits.user_agent, "Accept": _ACCEPT},
                timeout=aiohttp.ClientTimeout(total=None),  # our deadline: fetch()
                auto_decompress=True,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    @contextlib.asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """A place among the fetches in flight (all hosts, and this URL's host). The caller
        may hold it across its own work and then fetch with in_slot=True."""
        if is_local_path(url):
            yield
            return
        host = host_of(url)
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
            host = host_of(url)
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
        cut: bool = False,
    ) -> FetchResult:
        """`cut`: a body over the cap is cut there (`FetchResult.truncated`) instead of
        failing with FetchTooLarge (a page: its article is near the top)."""
        if is_local_path(url):
            return await asyncio.to_thread(self._read_local, url, etag, cut)
        async with contextlib.nullcontext() if in_slot else self.slot(url):
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.limits.timeout):
                    return await self._fetch_http(url, etag, last_modified, started, cut)
            except TimeoutError:
                raise FetchTimeout(
                    f"no complete response within {self.limits.timeout:g}s"
                ) from None

    async def _fetch_http(
        self, url: str, etag: str | None, last_modified: str | None, started: float, cut: bool
    ) -> FetchResult:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        permanent = True  # every hop so far a 301/308: the feed has moved
        for hop in range(self.limits.max_redirects + 1):
            _check_scheme(url)
            try:
                async with self._client().get(url, headers=headers, allow_redirects=False) as resp:
                    status = resp.status
                    if status in _REDIRECTS:
                        location = resp.headers.get("Location")
                        if not location:
                            raise FetchHTTPError("redirect without Location", status=status)
                        permanent = permanent and status in (301, 308)
                        url = urljoin(url, location)
                        continue
                    moved = url if hop and permanent else None
                    if status == 304:
                        return _result(url, resp, None, started, moved)
                    if status >= 400 or status < 200:
                        raise FetchHTTPError(
                            f"HTTP {status}",
                            status=status,
                            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
                        )
                    body, truncated = await self._read_capped(resp, cut)
                    return _result(url, resp, body, started, moved, truncated)
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                raise _converted(exc) from None
        raise FetchHTTPError(f"more than {self.limits.max_redirects} redirects")

    async def _read_capped(self, resp: aiohttp.ClientResponse, cut: bool) -> tuple[bytes, bool]:
        cap = self.limits.max_bytes
        declared = resp.headers.get("Content-Length")
        plain = resp.headers.get("Content-Encoding") is None
        if not cut and plain and declared and declared.isdigit() and int(declared) > cap:
            raise FetchTooLarge(f"body of {declared} bytes exceeds {cap}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):  # decompressed already
            size += len(chunk)
            if size > cap:
                if not cut:
                    raise FetchTooLarge(f"body exceeds {cap} bytes")
                chunks.append(chunk[: len(chunk) - (size - cap)])
                return b"".join(chunks), True  # the rest is never read: the connection closes
            chunks.append(chunk)
        return b"".join(chunks), False

    def _read_local(self, url: str, etag: str | None, cut: bool = False) -> FetchResult:
        started = time.monotonic()
        path = Path(urlsplit(url).path if url.startswith("file:") else url)
        try:
            with path.open("rb") as fh:
                body = fh.read(self.limits.max_bytes + 1)
        except OSError as exc:
            raise FetchError(f"cannot read {path}: {exc.strerror or exc}") from None
        truncated = len(body) > self.limits.max_bytes
        if truncated and not cut:
            raise FetchTooLarge(f"file exceeds {self.limits.max_bytes} bytes")
        body = body[: self.limits.max_bytes]
        digest = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if etag == digest:
            return FetchResult(str(path), 304, None, etag, None, None, time.monotonic() - started)
        elapsed = time.monotonic() - started
        return FetchResult(str(path), 200, body, digest, None, None, elapsed, truncated=truncated)


_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.5"
)


_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})", re.I)


def _result(
    url: str,
    resp: aiohttp.ClientResponse,
    body: bytes | None,
    started: float,
    moved: str | None,
    truncated: bool = False,
) -> FetchResult:
    return FetchResult(
        url=url,
        status=resp.status,
        body=body,
        etag=resp.headers.get("ETag"),
        last_modified=resp.headers.get("Last-Modified"),
        content_type=resp.headers.get("Content-Type"),
        elapsed=time.monotonic() - started,
        max_age=_max_age(resp.headers.get("Cache-Control")),
        moved_to=moved,
        truncated=truncated,
    )


def _max_age(value: str | None) -> float | None:
    """Cache-Control max-age in seconds (RFC 9111 5.2.2.1); None when absent or no-store."""
    if not value or "no-store" in value.lower():
        return None
    m = _MAX_AGE.search(value)
    return float(m.group(1)) if m else None


def _converted(exc: BaseException) -> FetchError:
    """An aiohttp or socket error as one of ours (the guard's refusal as FetchBlocked)."""
    blocked = blocked_in(exc)
    if blocked is not None:
        return FetchBlocked(str(blocked))
    if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        return FetchTimeout(f"timed out: {exc}")
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return FetchError(f"not a URL that can be fetched: {exc}")
    text = str(exc) or "connection failed"
    return FetchError(f"{type(exc).__name__}: {text}")


@functools.lru_cache(maxsize=8192)
def host_of(url: str) -> str:
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
