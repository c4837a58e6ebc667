"""The HTTP endpoint of `monitor run` (`server.listen`):

    GET /healthz      200 while the scheduler runs and the database answers, else 503; JSON
                      detail with the watchlist version and the last reload error
    GET /metrics      Prometheus text format (monitor.metrics)
    GET /alerts.atom  the most recent alerts as an Atom feed (RFC 4287), ?limit=1..200

aiohttp on the daemon's event loop. Everything that touches the database (the health ping,
the metrics collectors, the alerts query) runs on a small thread pool of the server's own,
so a slow database can neither block the event loop nor take the threads the pipeline uses.
There is no authentication: bind it to a private interface, or put a proxy in front.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import re
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog
from aiohttp import web

from monitor import __version__, db, store
from monitor.alert.render import source_line
from monitor.db import Engine
from monitor.metrics import CONTENT_TYPE, Metrics, WatchlistStatus
from monitor.models import Alert, Item, utcnow
from monitor.web import is_web_url

log = structlog.get_logger("monitor.server")

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_ID = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "monitor:alerts.atom"))
DEFAULT_ALERTS, MAX_ALERTS = 50, 200
TIMEOUT = 10.0  # seconds for a request's database work, then 503
# XML 1.0 allows only these characters; feed text may carry any others (NUL, ESC, ...).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

T = TypeVar("T")


class Server:
    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        *,
        watchlist: Callable[[], WatchlistStatus],
        running: Callable[[], bool],
    ) -> None:
        self.engine = engine
        self.metrics = metrics
        self._watchlist = watchlist
        self._running = running
        self._started = time.monotonic()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="http")
        self._ping: asyncio.Future[bool] | None = None
        self._runner: web.AppRunner | None = None
        self.address: str | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.prometheus)
        app.router.add_get("/alerts.atom", self.alerts_atom)
        app.middlewares.append(_headers)
        return app

    async def start(self, host: str, port: int) -> str:
        """Listen on host:port (port 0: a free port); returns the bound address, HOST:PORT."""
        runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0]
        h, p = bound[0], bound[1]
        self.address = f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
        return self.address

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _blocking(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self._pool, fn, *args), TIMEOUT)

    # --- /healthz ------------------------------------------------------------------------

    async def database_ok(self) -> bool:
        """db.ping in the pool; one ping at a time (a hung database costs one thread)."""
        if self._ping is None or self._ping.done():
            loop = asyncio.get_running_loop()
            self._ping = asyncio.ensure_future(
                loop.run_in_executor(self._pool, db.ping, self.engine)
            )
        try:
            return await asyncio.wait_for(asyncio.shield(self._ping), 5.0)
        except TimeoutError:
            return False

    async def health(self) -> tuple[bool, dict[str, object]]:
        running = self._running()
        database = await self.database_ok()
        healthy = running and database
        return healthy, {
            "status": "ok" if healthy else "unavailable",
            "scheduler": "running" if running else "stopped",
            "database": "ok" if database else "unreachable",
            "watchlist": dataclasses.asdict(self._watchlist()),
            "worker": self.metrics.worker_status(),
            "version": __version__,
            "uptime_seconds": round(time.monotonic() - self._started, 1),
        }

    async def healthz(self, _request: web.Request) -> web.Response:
        healthy, detail = await self.health()
        return web.json_response(
            detail, status=200 if healthy else 503, dumps=lambda o: json.dumps(o, indent=1)
        )

    # --- /metrics ------------------------------------------------------------------------

    async def prometheus(self, _request: web.Request) -> web.Response:
        try:
            body = await self._blocking(self.metrics.render)
        except TimeoutError:
            raise web.HTTPServiceUnavailable(text="metrics took too long") from None
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    # --- /alerts.atom --------------------------------------------------------------------

    async def alerts_atom(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", DEFAULT_ALERTS))
        except ValueError:
            raise web.HTTPBadRequest(text="limit must be a number") from None
        limit = max(1, min(MAX_ALERTS, limit))
        try:
            rows = await self._blocking(recent_alerts, self.engine, limit)
        except TimeoutError:
            raise web.HTTPServiceUnavailable(text="the database took too long") from None
        body = atom_feed(rows, self_url=_request_url(request), now=utcnow())
        return web.Response(body=body, headers={"Content-Type": "application/atom+xml"})


@web.middleware
async def _headers(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


# --- the Atom feed ---------------------------------------------------------------------


def recent_alerts(engine: Engine, limit: int) -> list[tuple[Alert, Item]]:
    with db.session(engine) as s:
        return [(r.alert, r.item) for r in store.recent_alerts(s, limit)]


def atom_feed(rows: Sequence[tuple[Alert, Item]], *, self_url: str, now: dt.datetime) -> bytes:
    """An Atom 1.0 document of the alerts, newest first. Every string from a feed goes in
    as element text or an attribute value, which ElementTree escapes; characters XML cannot
    carry are dropped; a link is written only for an absolute http(s) URL."""
    feed = ET.Element("feed", xmlns=ATOM_NS)
    _text(feed, "id", FEED_ID)
    _text(feed, "title", "monitor: recent alerts")
    newest = max((a.created_at for a, _ in rows if a.created_at), default=now)
    _text(feed, "updated", _time(newest))
    ET.SubElement(_text(feed, "author"), "name").text = "monitor"
    _text(feed, "generator", "monitor", version=__version__)
    if is_web_url(self_url):
        ET.SubElement(feed, "link", rel="self", type="application/atom+xml", href=self_url)
    for alert, item in rows:
        entry = ET.SubElement(feed, "entry")
        _text(entry, "id", "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, alert.id)))
        rule = alert.rule_name or alert.rule_id
        _text(entry, "title", f"[{alert.severity.upper()}] {rule}: {item.title}")
        _text(entry, "updated", _time(alert.created_at or now))
        if item.published_at is not None:
            _text(entry, "published", _time(item.published_at))
        if item.url and is_web_url(item.url):
            ET.SubElement(entry, "link", rel="alternate", type="text/html", href=_clean(item.url))
        ET.SubElement(_text(entry, "author"), "name").text = _clean(item.source or item.feed_id)
        _text(entry, "category", term=alert.rule_id, label=rule)
        _text(entry, "category", term=alert.severity)
        _text(entry, "summary", _summary(alert, item), type="text")
    return bytes(ET.tostring(feed, encoding="utf-8", xml_declaration=True))


def _summary(alert: Alert, item: Item) -> str:
    lines = [
        f"Rule {alert.rule_id} ({alert.severity}) matched: {', '.join(alert.terms)}",
        alert.snippet,
        "",
        (item.summary or item.content)[:1000],
        "",
        f"Feed: {item.feed_id}" + (f"; source: {item.source}" if item.source else ""),
    ]
    if alert.sources:
        lines += ["Also reported by:", *(f"- {source_line(c)}" for c in alert.sources)]
    elif alert.also_reported_by:
        lines.append("Also reported by: " + ", ".join(alert.also_reported_by))
    if item.url and not is_web_url(item.url):
        lines.append(f"URL (not linked): {item.url}")
    lines.append(f"Alert {alert.id}")
    return "\n".join(lines).strip()


def _text(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: _clean(v) for k, v in attrs.items()})
    if text is not None:
        el.text = _clean(text)
    return el


def _clean(value: str) -> str:
    return _NOT_XML.sub("", value)


def _time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def serve(
    engine: Engine,
    metrics: Metrics,
    host: str,
    port: int,
    *,
    watchlist: Callable[[], WatchlistStatus],
    running: Callable[[], bool],
) -> Server | None:
    """Start the endpoint and log where it listens. An address that cannot be bound is
    logged as an error and the daemon goes on without it: alerts matter more than the
    endpoint, and the failing health check makes the problem visible."""
    srv = Server(engine, metrics, watchlist=watchlist, running=running)
    try:
        address = await srv.start(host, port)
    except OSError as exc:
        await srv.stop()
        log.error("http_failed", listen=f"{host}:{port}", error=exc.strerror or str(exc))
        return None
    log.info("http_listening", address=address, paths=["/healthz", "/metrics", "/alerts.atom"])
    return srv


def _request_url(request: web.Request) -> str:
    try:
        return str(request.url)
    except ValueError:  # a Host header that is not a host
        return ""
