"""The webhook channel: one signed JSON POST per alert, or per digest (Standard Webhooks).

Outcome of one attempt (shared/reference/standard-webhooks.md, "Delivery success and failure"):

    2xx                      delivered
    3xx                      permanent: redirects are not followed (update the url instead)
    408, 429, 5xx            retryable; Retry-After (seconds or HTTP-date) passed on
    other 4xx (410 included) permanent: the receiver refused this request for good
    timeout, network error   retryable

The whole attempt (connect, send, status line) has one deadline, `timeout`, so a receiver
that drips bytes cannot hold a delivery worker. Without a secret the request is sent
unsigned (no `webhook-signature`; `webhook-id` and `webhook-timestamp` are still sent).

Error messages name the channel and the receiver's origin (scheme, host, port) only: the
path and query of chat webhooks often carry a token, and the secret is never included.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from monitor import __version__
from monitor.alert import digest, render
from monitor.alert.signing import decode_secret, sign
from monitor.errors import ConfigError, DeliveryError
from monitor.models import AlertMessage

USER_AGENT = f"monitor/{__version__}"

MAX_RETRY_AFTER = 86_400.0
"""Seconds: a Retry-After beyond a day is taken as a day (the whole retry window is ~24 h)."""

_DETAIL_BYTES = 512


def origin(url: str) -> str:
    """`scheme://host[:port]` of a URL: no userinfo, path, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "(invalid url)"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from now (RFC 9110 10.2.3: delay-seconds or an HTTP-date),
    clamped to [0, MAX_RETRY_AFTER]; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    delay = when.timestamp() - (time.time() if now is None else now)
    return min(max(delay, 0.0), MAX_RETRY_AFTER)


class WebhookNotifier:
    """POSTs each alert as JSON to `url`, signed with `secret` when one is given.

    One HTTP client (connection pool) per channel, closed by `aclose`. `transport` is for
    tests (httpx.MockTransport).
    """

    def __init__(
        self,
        name: str,
        url: str,
        secret: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._origin = origin(url)
        try:
            parts = urlsplit(url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            ok = False
        if not ok:
            raise ConfigError(f"channel {name}: webhook url must be an absolute http(s) URL")
        if secret is not None:
            try:
                decode_secret(secret)
            except ValueError as exc:
                raise ConfigError(f"channel {name}: {exc}") from None
        self._secret = secret
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    def _scrub(self, text: str) -> str:
        """A message from a library, with anything secret in our configuration removed."""
        secrets = [self.url]
        parts = urlsplit(self.url)
        secrets += [s for s in (parts.username, parts.password, parts.query, parts.path) if s]
        if self._secret:
            secrets += [self._secret, self._secret.removeprefix("whsec_")]
        for s in sorted(set(secrets), key=len, reverse=True):
            if len(s) > 1:
                text = text.replace(s, "***")
        return render.one_line(text, 300)

    async def send(self, msg: AlertMessage) -> None:
        await self._send(msg.id, lambda: render.webhook_payload(msg))

    async def send_digest(
        self, digest_id: str, msgs: Sequence[AlertMessage], window: dt.timedelta
    ) -> None:
        """One POST of `{"type": "digest", ..., "alerts": [...]}` (docs/webhook-digest.schema
        .json), signed alike, webhook-id = digest_id; an empty digest sends nothing."""
        if msgs:
            now = dt.datetime.now(dt.UTC)
            await self._send(digest_id, lambda: digest.digest_payload(digest_id, msgs, window, now))

    async def _send(self, msg_id: str, payload: Callable[[], dict[str, Any]]) -> None:
        try:
            body = json.dumps(payload(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "webhook-id": msg_id,
                "webhook-timestamp": str(timestamp),
            }
            if self._secret is not None:
                headers["webhook-signature"] = sign(self._secret, msg_id, timestamp, body)
            elif not msg_id or any(ch.isspace() or ch == "." for ch in msg_id):
                raise ValueError("webhook id must be non-empty, without '.' or whitespace")
        except (ValueError, TypeError) as exc:
            raise DeliveryError(
                f"webhook {self.name}: cannot build the request: {self._scrub(str(exc))}",
                permanent=True,
            ) from None
        try:
            await self._post(body, headers)
        except DeliveryError:
            raise
        except (TimeoutError, httpx.TimeoutException):
            raise DeliveryError(
                f"webhook {self.name} ({self._origin}): no answer within {self._timeout:g}s"
            ) from None
        except httpx.UnsupportedProtocol as exc:
            raise DeliveryError(
                f"webhook {self.name} ({self._origin}): {self._scrub(str(exc))}", permanent=True
            ) from None
        except httpx.HTTPError as exc:
            raise DeliveryError(
                f"webhook {self.name} ({self._origin}): {type(exc).__name__}: "
                f"{self._scrub(str(exc)) or 'connection failed'}"
            ) from None
        except Exception as exc:  # nothing but DeliveryError may escape a Notifier
            raise DeliveryError(
                f"webhook {self.name} ({self._origin}): unexpected {type(exc).__name__}: "
                f"{self._scrub(str(exc))}"
            ) from exc

    async def _post(self, body: bytes, headers: dict[str, str]) -> None:
        async with (
            asyncio.timeout(self._timeout),
            self._client.stream("POST", self.url, content=body, headers=headers) as resp,
        ):
            status = resp.status_code
            if 200 <= status < 300:
                return
            detail = await _read_some(resp, _DETAIL_BYTES)
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            location = resp.headers.get("Location")
        where = f"webhook {self.name} ({self._origin})"
        said = f": {self._scrub(detail)}" if detail.strip() else ""
        if 300 <= status < 400:
            to = f" to {origin(location)}" if location else ""
            raise DeliveryError(
                f"{where}: HTTP {status}{to}; redirects are not followed, update the url",
                permanent=True,
            )
        if status in (408, 429) or status >= 500:
            raise DeliveryError(f"{where}: HTTP {status}{said}", retry_after=retry_after)
        if 400 <= status < 500:
            gone = " (the receiver asks us to stop)" if status == 410 else ""
            raise DeliveryError(f"{where}: HTTP {status}{gone}{said}", permanent=True)
        raise DeliveryError(f"{where}: unexpected HTTP {status}{said}")

    async def aclose(self) -> None:
        await self._client.aclose()


async def _read_some(resp: httpx.Response, limit: int) -> str:
    """At most `limit` bytes of an error response, for the message; the rest is dropped."""
    data = b""
    try:
        async for chunk in resp.aiter_bytes():
            data += chunk
            if len(data) >= limit:
                break
    except httpx.HTTPError:
        pass
    return data[:limit].decode("utf-8", "replace")
