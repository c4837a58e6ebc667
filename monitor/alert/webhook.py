"""The webhook channel: one signed JSON POST per alert, per digest, or per feed health change
(`feed_health`), signed per Standard Webhooks.

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
import json
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from monitor import __version__
from monitor.alert import digest, feedhealth, render
from monitor.alert.attempt import attempt, building
from monitor.alert.signing import decode_secret, sign
from monitor.errors import ConfigError, DeliveryError
from monitor.models import AlertMessage, HealthMessage
from monitor.web import is_web_url, origin, parse_retry_after

USER_AGENT = f"monitor/{__version__}"

_DETAIL_BYTES = 512


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
        if not is_web_url(url):
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

    async def send_health(self, msg: HealthMessage) -> None:
        """One POST of `{"type": "feed_health", ...}`, signed alike, webhook-id = its id."""
        await self._send(msg.id, lambda: feedhealth.webhook_payload(msg))

    async def send_digest(
        self, digest_id: str, msgs: Sequence[AlertMessage], window: dt.timedelta
    ) -> None:
        """One POST of `{"type": "digest", ..., "alerts": [...]}` (docs/webhook-digest.schema
        .json), signed alike, webhook-id = digest_id; an empty digest sends nothing."""
        if msgs:
            now = dt.datetime.now(dt.UTC)
            await self._send(digest_id, lambda: digest.digest_payload(digest_id, msgs, window, now))

    async def _send(self, msg_id: str, payload: Callable[[], dict[str, Any]]) -> None:
        with building(f"webhook {self.name}", "request", self._scrub):
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
        where = f"webhook {self.name} ({self._origin})"
        with attempt(where, self._timeout, self._scrub, self._classify):
            await self._post(body, headers)

    def _classify(self, exc: Exception) -> DeliveryError | None:
        where = f"webhook {self.name} ({self._origin})"
        if isinstance(exc, httpx.TimeoutException):
            return DeliveryError(f"{where}: no answer within {self._timeout:g}s")
        if isinstance(exc, httpx.UnsupportedProtocol):
            return DeliveryError(f"{where}: {self._scrub(str(exc))}", permanent=True)
        if isinstance(exc, httpx.HTTPError):
            detail = self._scrub(str(exc)) or "connection failed"
            return DeliveryError(f"{where}: {type(exc).__name__}: {detail}")
        return None

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
