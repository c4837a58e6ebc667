"""Small web policies, each written once: what counts as a web URL, a URL's origin (for
messages that must not carry a path or a token), and the Retry-After header.

Used by fetch (feeds, pages), alert (webhooks, links in emails), server (Atom links) and
opml (exportable feeds).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import time
from urllib.parse import urlsplit

MAX_RETRY_AFTER = 86_400.0
"""Seconds: a Retry-After beyond a day is taken as a day (the whole retry window is ~24 h)."""


def is_web_url(url: str | None) -> bool:
    """An absolute http(s) URL with a host."""
    if not url:
        return False
    try:
        parts = urlsplit(url)
        return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


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
