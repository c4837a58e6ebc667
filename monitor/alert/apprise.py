"""The Apprise channel: Slack, Discord, Telegram, ntfy, Matrix, Teams and the rest, each
configured as an Apprise URL (https://github.com/caronc/apprise/wiki), no code of ours per
service.

One message per alert (title: the email subject; body: the plain-text email), or per digest
(title: the digest subject; body: one line per alert, most severe first), or per feed health
change (title and body as its email's). Text is sent as
Apprise's TEXT format, so a service that takes Markdown or HTML gets the feed text escaped.
A message longer than a service accepts is truncated (Apprise's `overflow=truncate`), unless
the URL asks otherwise (`?overflow=split`, `?overflow=upstream`): an over-long Discord or
Telegram message would otherwise be refused on every retry.

Outcome of one attempt (Apprise tells success or failure per service, not why):

    every URL delivered                         delivered
    a URL Apprise cannot parse or load          permanent, and nothing is sent: the channel
                                                is misconfigured (settings reject it at load
                                                time through `validate_apprise_urls`)
    a service reports failure, times out        retryable; the URLs that did succeed are
      (`timeout`) or raises                     remembered (in memory) and skipped on the
                                                retry, so Slack does not get the alert again
                                                each time Telegram is down

Secrets: an Apprise URL holds its credentials (tokens in the path, passwords, headers), and
even Apprise's privacy form (`url(privacy=True)`) shows some (custom headers, query values,
ntfy topics). So a URL is never shown: errors name the service and the position of its URL
(`Slack (urls[1])`), and every token of every configured URL is replaced by `***` in error
texts and in the records of the `apprise` and `urllib3.connectionpool` loggers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus

from monitor.alert import digest, feedhealth, render
from monitor.errors import DeliveryError
from monitor.models import AlertMessage, HealthMessage

if TYPE_CHECKING:
    import apprise

REMEMBER = 10_000
"""Partly delivered messages whose delivered URLs are remembered (oldest forgotten first)."""

_MIN_TOKEN = 4
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,19}")
_OVERFLOW_SET = re.compile(r"[?&]overflow=", re.IGNORECASE)


# --- secrets ---------------------------------------------------------------------------------


def apprise_secrets(urls: Iterable[str]) -> list[str]:
    """Every piece of these URLs that may be a secret: userinfo, path segments, host (a token
    for many services), query values, raw and percent-decoded. Not the scheme, not query
    keys, not short port numbers. Feed them to a log redactor as well."""
    out: set[str] = set()
    for url in urls:
        _, sep, rest = url.partition("://")
        if not sep:
            rest = url
        head, _, query = rest.partition("?")
        pieces = re.split(r"[/:@#;,]+", head)
        pieces += [pair.partition("=")[2] for pair in re.split(r"[&;]", query)]
        for piece in pieces:
            for form in {piece, unquote(piece), unquote_plus(piece)}:
                for part in {form, *form.split()}:
                    if len(part) >= _MIN_TOKEN and not (part.isdigit() and len(part) <= 5):
                        out.add(part)
    return sorted(out, key=len, reverse=True)


class _Scrubber(logging.Filter):
    """Replaces every registered secret in the records of Apprise's loggers (all its plugins
    log on `apprise`; urllib3 logs request lines with their query at DEBUG)."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def register(self, urls: Iterable[str]) -> None:
        with self._lock:
            merged = set(self._secrets) | set(apprise_secrets(urls))
            self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:  # longest first: no partial leftovers
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg = self.scrub(text)
        record.args = None
        return True


_SCRUBBER = _Scrubber()
for _name in ("apprise", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_SCRUBBER)


# --- loading URLs ----------------------------------------------------------------------------


def _apprise() -> Any:
    """The apprise module, imported at first use: a daemon without an Apprise channel never
    pays its import (a twentieth of a second of every start)."""
    import apprise

    return apprise


def _asset() -> apprise.AppriseAsset:
    # Memory only: Apprise's persistent store would otherwise write under the home directory
    # (read-only in the container). secure_logging: Apprise masks what it can by itself.
    return _apprise().AppriseAsset(storage_mode="memory", secure_logging=True)


def _load(url: str, asset: apprise.AppriseAsset) -> Any | None:
    """The Apprise service for one URL, or None when Apprise cannot use it. Only notification
    URLs: no configuration URLs (which would fetch more URLs from a file or a server)."""
    if not isinstance(url, str) or not url.strip() or any(ch.isspace() for ch in url.strip()):
        return None
    _SCRUBBER.register([url])  # before Apprise logs anything about it
    try:
        with warnings.catch_warnings():
            # The first URL loads every plugin module; one imports `imghdr` (deprecated).
            warnings.simplefilter("ignore", DeprecationWarning)
            service = _apprise().Apprise.instantiate(url.strip(), asset=asset)
    except Exception:
        return None
    if service is None:
        return None
    if not _OVERFLOW_SET.search(url):
        service.overflow_mode = _apprise().OverflowMode.TRUNCATE
    return service


def validate_apprise_urls(urls: Sequence[str]) -> list[str]:
    """The URLs Apprise cannot use (unknown scheme, missing token, malformed), as given, in
    order; empty when all are good. Never shows them anywhere: to name one in a message, use
    `describe_apprise_url`."""
    asset = _asset()
    return [url for url in urls if _load(url, asset) is None]


def describe_apprise_url(url: str, index: int | None = None) -> str:
    """A safe way to name a URL in a message: `urls[2] (slack://…)`, scheme only."""
    scheme, sep, _ = str(url).partition("://")
    shown = f"{scheme.lower()}://…" if sep and _SCHEME.fullmatch(scheme) else "not a URL"
    return f"urls[{index}] ({shown})" if index is not None else shown


# --- the notifier ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    index: int
    label: str  # "Slack (urls[1])": never the URL
    apprise: apprise.Apprise


def _notify_type(level: str) -> apprise.NotifyType:
    if level.lower() == "critical":
        return _apprise().NotifyType.FAILURE  # red in most services
    if level.lower() == "high":
        return _apprise().NotifyType.WARNING
    return _apprise().NotifyType.INFO


class AppriseNotifier:
    """Sends each alert (or digest) to every Apprise URL of the channel, concurrently, each
    within `timeout` seconds."""

    def __init__(self, name: str, urls: Sequence[str], *, timeout: float = 30.0) -> None:
        self.name = name
        self._timeout = timeout
        self._count = len(urls)
        asset = _asset()
        self._targets: list[_Target] = []
        self._bad: list[str] = []
        for i, url in enumerate(urls):
            service = _load(url, asset)
            if service is None:
                self._bad.append(describe_apprise_url(url, i))
                continue
            one = _apprise().Apprise(asset=asset)
            one.add(service)
            label = f"{render.one_line(str(service.service_name), 40)} (urls[{i}])"
            self._targets.append(_Target(i, label, one))
        self._delivered: OrderedDict[str, frozenset[int]] = OrderedDict()

    async def send(self, msg: AlertMessage) -> None:
        await self._notify(
            msg.id,
            title=render.email_subject(msg),
            body=render.email_text(msg),
            kind=_notify_type(msg.severity),
        )

    async def send_health(self, msg: HealthMessage) -> None:
        await self._notify(
            msg.id,
            title=feedhealth.email_subject(msg),
            body=feedhealth.email_text(msg),
            kind=_apprise().NotifyType.SUCCESS if msg.state == "ok" else _notify_type("high"),
        )

    async def send_digest(
        self, digest_id: str, msgs: Sequence[AlertMessage], window: dt.timedelta
    ) -> None:
        if not msgs:
            return
        now = dt.datetime.now(dt.UTC)
        worst = digest.ordered(msgs)[0].severity
        await self._notify(
            digest_id,
            title=digest.digest_subject(msgs, window),
            body=digest.digest_text(digest_id, msgs, window, now, full=0),
            kind=_notify_type(worst),
        )

    async def _notify(self, key: str, *, title: str, body: str, kind: apprise.NotifyType) -> None:
        where = f"apprise {self.name}"
        if self._bad:
            raise DeliveryError(
                f"{where}: not a URL Apprise can use: {', '.join(self._bad)}; nothing was sent",
                permanent=True,
            )
        if not self._targets:
            raise DeliveryError(f"{where}: no URLs configured", permanent=True)
        done = self._delivered.get(key, frozenset())
        pending = [t for t in self._targets if t.index not in done]
        outcomes = await asyncio.gather(*(self._one(t, title, body, kind) for t in pending))
        failed = [(t, why) for t, why in zip(pending, outcomes, strict=True) if why is not None]
        done = done | {t.index for t, why in zip(pending, outcomes, strict=True) if why is None}
        if not failed:
            self._delivered.pop(key, None)
            return
        self._remember(key, done)
        text = "; ".join(f"{t.label}: {why}" for t, why in failed)
        if done:
            text += f" ({len(done)} of {self._count} delivered, not repeated on retry)"
        raise DeliveryError(f"{where}: {text}")

    async def _one(
        self, target: _Target, title: str, body: str, kind: apprise.NotifyType
    ) -> str | None:
        """None when delivered, else why not (scrubbed, one line)."""
        try:
            async with asyncio.timeout(self._timeout):
                result = await target.apprise.async_notify(
                    body=body,
                    title=title,
                    notify_type=kind,
                    body_format=_apprise().NotifyFormat.TEXT,
                    interpret_escapes=False,
                )
        except TimeoutError:
            return f"no answer within {self._timeout:g}s"
        except Exception as exc:  # nothing but DeliveryError may escape a Notifier
            return self._scrub(f"{type(exc).__name__}: {exc}")
        try:
            if result:
                return None
            return "failed" + (f": {why}" if (why := self._why(result)) else "")
        finally:
            with contextlib.suppress(Exception):
                close = getattr(result, "close", None)
                if callable(close):
                    close()

    def _why(self, result: object) -> str:
        """The last warning Apprise recorded for the call (Apprise 2 results carry their log
        entries, e.g. `Failed to send JSON POST notification: ..., error=500.`); '' if none."""
        try:
            entries = list(getattr(result, "logs", lambda: [])())
        except Exception:
            return ""
        for entry in reversed(entries):
            if getattr(entry, "level", "") in ("WARNING", "ERROR", "CRITICAL"):
                return self._scrub(str(getattr(entry, "message", "")))
        return ""

    def _remember(self, key: str, done: frozenset[int]) -> None:
        self._delivered[key] = done
        self._delivered.move_to_end(key)
        while len(self._delivered) > REMEMBER:
            self._delivered.popitem(last=False)

    @staticmethod
    def _scrub(text: str) -> str:
        return render.one_line(_SCRUBBER.scrub(text), 300)

    async def aclose(self) -> None:
        """Nothing held between sends (Apprise opens a connection per notification)."""
