"""The HTTP endpoint: /healthz, /metrics, /alerts.atom. A real aiohttp server on 127.0.0.1
with a real SQLite database; the last test runs the `monitor` daemon itself and reads its
endpoint while it polls a feed server."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import feedparser
import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import Session
from structlog.testing import capture_logs

from monitor import db, schema, server
from monitor.metrics import Metrics, WatchlistStatus, feed_state
from monitor.models import Alert, Delivery, Feed, FeedHealth, Item, utcnow
from monitor.outcomes import DeliveryOutcome, FeedOutcome
from monitor.settings import split_listen
from tests.feedserver import FeedServer, Route

NOW = utcnow()
WATCHLIST = WatchlistStatus("v123abc", 3, reloads=2, reload_errors=1, last_error=None)


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[sa.Engine]:
    engine = db.make_engine(sqlite_url)
    schema.upgrade(engine)
    yield engine
    engine.dispose()


def make_metrics(
    engine: sa.Engine,
    feeds: dict[str, dt.timedelta] | None = None,
    channels: tuple[str, ...] = ("ops",),
) -> Metrics:
    feeds = {"wire": dt.timedelta(minutes=5)} if feeds is None else feeds
    return Metrics(engine, feeds=feeds, channels=channels, watchlist=lambda: WATCHLIST)


class Running:
    def __init__(
        self,
        engine: sa.Engine,
        feeds: dict[str, dt.timedelta] | None = None,
        channels: tuple[str, ...] = ("ops",),
    ) -> None:
        self.state = True
        self.watchlist = WATCHLIST
        self.metrics = make_metrics(engine, feeds, channels)
        self.server = server.Server(
            engine, self.metrics, watchlist=lambda: self.watchlist, running=lambda: self.state
        )
        self.base = ""


@pytest.fixture
async def http(engine: sa.Engine) -> AsyncIterator[Running]:
    running = Running(engine)
    address = await running.server.start("127.0.0.1", 0)
    running.base = f"http://{address}"
    try:
        yield running
    finally:
        await running.server.stop()


async def get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
        return await client.get(url)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("localhost:9000", ("localhost", 9000)),
        ("[::1]:8080", ("::1", 8080)),
    ],
)
def test_listen_addresses(listen: str, expected: tuple[str, int]) -> None:
    assert split_listen(listen) == expected


@pytest.mark.parametrize("listen", ["8080", ":8080", "host:", "host:http", "h:70000", "::1:80"])
def test_bad_listen_addresses_are_refused(listen: str) -> None:
    with pytest.raises(ValueError):
        split_listen(listen)


# --- /healthz ------------------------------------------------------------------------------


async def test_healthz_is_200_with_detail_while_the_scheduler_runs_and_the_database_answers(
    http: Running,
) -> None:
    http.watchlist = WatchlistStatus(
        "v456def", 4, reloads=3, reload_errors=2, last_error="watchlist.yaml:3:12: bad query"
    )
    r = await get(http.base + "/healthz")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()
    assert detail["status"] == "ok"
    assert detail["scheduler"] == "running" and detail["database"] == "ok"
    assert detail["watchlist"] == {
        "version": "v456def",
        "rules": 4,
        "reloads": 3,
        "reload_errors": 2,
        "last_error": "watchlist.yaml:3:12: bad query",
        "regex_timeouts": 0,
    }


async def test_healthz_is_503_when_the_scheduler_has_stopped(http: Running) -> None:
    http.state = False
    r = await get(http.base + "/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable" and r.json()["scheduler"] == "stopped"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_healthz_is_503_and_metrics_still_answer_when_the_database_does_not() -> None:
    engine = db.make_engine(f"postgresql+psycopg://monitor@127.0.0.1:{closed_port()}/nothing")
    running = Running(engine)
    address = await running.server.start("127.0.0.1", 0)
    try:
        r = await get(f"http://{address}/healthz")
        assert r.status_code == 503
        assert r.json()["database"] == "unreachable" and r.json()["scheduler"] == "running"
        m = await get(f"http://{address}/metrics")
        assert m.status_code == 200
        values = samples(m.text)
        assert values[("monitor_database_up", ())] == 0
        assert ("monitor_feeds", (("state", "ok"),)) not in values
    finally:
        await running.server.stop()
        engine.dispose()


# --- /metrics ------------------------------------------------------------------------------


async def test_metrics_count_what_the_pipeline_observers_report(http: Running) -> None:
    m = http.metrics
    m.observe_feed(
        FeedOutcome("wire", ok=True, status=200, items=5, new=3, alerts=2, elapsed=0.3,
                    pages={"ok": 2, "ExtractError": 1})
    )  # fmt: skip
    m.observe_feed(FeedOutcome("wire", ok=True, status=304, elapsed=0.02))
    m.observe_feed(FeedOutcome("wire", ok=False, status=503, error_kind="FetchHTTPError"))
    m.observe_feed(FeedOutcome("slow", ok=False, error_kind="FetchTimeout", elapsed=30.0))
    m.observe_delivery(DeliveryOutcome("ops", "alrt_1", "dprk", "high", "sent", 1))
    m.observe_delivery(DeliveryOutcome("ops", "alrt_2", "dprk", "high", "retry", 1))
    m.observe_delivery(DeliveryOutcome("mail", "alrt_2", "dprk", "high", "dead", 14))

    r = await get(http.base + "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    v = samples(r.text)
    for status in ("200", "304", "503", "FetchTimeout"):
        assert v[("monitor_fetches_total", (("status", status),))] == 1
    assert v[("monitor_fetch_duration_seconds_count", ())] == 4
    assert v[("monitor_fetch_duration_seconds_bucket", (("le", "0.05"),))] == 2
    assert v[("monitor_items_new_total", ())] == 3
    assert v[("monitor_alerts_created_total", ())] == 2
    assert v[("monitor_pages_total", (("result", "ok"),))] == 2  # full text: pages by result
    assert v[("monitor_pages_total", (("result", "ExtractError"),))] == 1
    for channel, result in (("ops", "sent"), ("ops", "retry"), ("mail", "dead")):
        labels = (("channel", channel), ("result", result))
        assert v[("monitor_delivery_attempts_total", labels)] == 1
    assert v[("monitor_watchlist_info", (("version", "v123abc"),))] == 1
    assert v[("monitor_watchlist_rules", ())] == 3
    assert v[("monitor_watchlist_reloads_total", ())] == 2
    assert v[("monitor_watchlist_reload_errors_total", ())] == 1
    assert v[("monitor_watchlist_reload_failing", ())] == 0
    assert v[("monitor_regex_timeouts_total", ())] == 0
    assert v[("monitor_scheduler_running", ())] == 1
    assert not any(name.endswith("_created") for name, _ in v)


def add_alert(
    s: Session,
    alert_id: str,
    rule: str,
    severity: str,
    *,
    url: str | None = "https://example.org/story",
    title: str = "North Korea fires a missile",
    created: dt.datetime = NOW,
    deliveries: dict[str, str] | None = None,
    item_id: int | None = None,
) -> None:
    if item_id is None:
        item = Item(
            feed_id="wire",
            guid=alert_id,
            url=url,
            title=title,
            summary="Seoul said so.",
            source="Wire Service",
            published_at=created - dt.timedelta(minutes=5),
            first_seen_at=created,
            content_hash=alert_id,
        )
        s.add(item)
        s.flush()
        item_id = item.id
    assert item_id is not None
    s.add(
        Alert(
            id=alert_id,
            rule_id=rule,
            item_id=item_id,
            created_at=created,
            rule_name=f"Rule {rule}",
            severity=severity,
            terms=["north korea", "missile"],
            snippet="…«North Korea» fired a «missile»…",
        )
    )
    for channel, status in (deliveries or {}).items():
        s.add(Delivery(alert_id=alert_id, channel=channel, status=status, next_attempt_at=NOW))
    s.flush()


async def test_metrics_read_feed_health_outbox_and_alerts_from_the_database(
    engine: sa.Engine,
) -> None:
    intervals = {name: dt.timedelta(minutes=10) for name in ("fine", "broken", "quiet", "new")}
    running = Running(engine, feeds=intervals, channels=("ops", "mail"))
    hour_ago = NOW - dt.timedelta(hours=1)
    with Session(engine) as s:
        s.add(Feed(id="fine", url="u", last_fetch_at=NOW, last_success_at=NOW))
        s.add(Feed(id="broken", url="u", last_fetch_at=NOW, consecutive_errors=3, health="failing"))
        s.add(Feed(id="quiet", url="u", last_fetch_at=NOW, last_success_at=NOW, health="stale"))
        for n, state in enumerate(("failing", "ok", "failing", "stale")):
            s.add(FeedHealth(id=f"h{n}", feed_id="broken", state=state, previous="ok"))
        s.add(Feed(id="removed", url="u", last_fetch_at=NOW, consecutive_errors=1))
        add_alert(s, "a1", "dprk", "high", created=hour_ago, deliveries={"ops": "pending"})
        add_alert(s, "a2", "dprk", "high", deliveries={"ops": "sent", "mail": "dead"})
        add_alert(s, "a3", "iran", "low", deliveries={"ops": "pending", "mail": "sent"})
        s.commit()
    address = await running.server.start("127.0.0.1", 0)
    try:
        v = samples((await get(f"http://{address}/metrics")).text)
    finally:
        await running.server.stop()

    assert v[("monitor_database_up", ())] == 1
    states = {k[1][0][1]: n for k, n in v.items() if k[0] == "monitor_feeds"}
    assert states == {"ok": 1, "failing": 1, "stale": 1, "never": 1}  # "removed" is not counted
    changes = {k[1][0][1]: n for k, n in v.items() if k[0] == "monitor_feed_health_changes_total"}
    assert changes == {"failing": 2, "ok": 1, "stale": 1}
    assert v[("monitor_alerts_total", (("rule", "dprk"), ("severity", "high")))] == 2
    assert v[("monitor_alerts_total", (("rule", "iran"), ("severity", "low")))] == 1
    deliveries = {k[1]: n for k, n in v.items() if k[0] == "monitor_deliveries"}
    assert deliveries[(("channel", "ops"), ("status", "pending"))] == 2
    assert deliveries[(("channel", "ops"), ("status", "sent"))] == 1
    assert deliveries[(("channel", "mail"), ("status", "dead"))] == 1
    assert deliveries[(("channel", "mail"), ("status", "pending"))] == 0
    assert v[("monitor_outbox_depth", (("channel", "ops"),))] == 2
    assert v[("monitor_outbox_depth", (("channel", "mail"),))] == 0
    age = v[("monitor_outbox_oldest_pending_age_seconds", (("channel", "ops"),))]
    since_now = (dt.datetime.now(dt.UTC) - NOW).total_seconds()  # NOW is fixed at import
    assert 3590 < age < 3610 + since_now
    assert v[("monitor_outbox_oldest_pending_age_seconds", (("channel", "mail"),))] == 0


def test_feed_states() -> None:
    assert feed_state(None, "ok") == "never"
    for state in ("ok", "failing", "stale"):
        assert feed_state(NOW, state) == state  # as the writer set it (health.py)


# --- /alerts.atom --------------------------------------------------------------------------


async def test_alerts_atom_is_a_feed_of_the_alerts_with_their_links(
    http: Running, engine: sa.Engine
) -> None:
    with Session(engine) as s:
        older = NOW - dt.timedelta(minutes=30)
        add_alert(s, "alrt_old", "dprk", "high", url="https://example.org/a", created=older)
        add_alert(s, "alrt_new", "sanctions", "medium", url="http://example.org/b", title="Newer")
        s.commit()
    r = await get(http.base + "/alerts.atom")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(r.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "monitor: recent alerts"
    assert [e.link for e in parsed.entries] == ["http://example.org/b", "https://example.org/a"]
    newer = parsed.entries[0]
    assert newer.title == "[MEDIUM] Rule sanctions: Newer"
    assert newer.author == "Wire Service"
    assert [t.term for t in newer.tags] == ["sanctions", "medium"]
    assert "alrt_new" in newer.summary and "«North Korea» fired" in newer.summary
    assert newer.id.startswith("urn:uuid:") and newer.id != parsed.entries[1].id
    limited = feedparser.parse((await get(http.base + "/alerts.atom?limit=1")).content)
    assert [e.link for e in limited.entries] == ["http://example.org/b"]
    assert (await get(http.base + "/alerts.atom?limit=x")).status_code == 400


async def test_alerts_atom_escapes_feed_text_and_links_only_web_urls(
    http: Running, engine: sa.Engine
) -> None:
    hostile = 'Fake</title><script>alert("x")</script> & ]]> \x00\x1b[31m done'
    with Session(engine) as s:
        add_alert(s, "a_js", "r", "high", url="javascript:alert(1)", title=hostile)
        earlier = NOW - dt.timedelta(seconds=1)
        add_alert(s, "a_data", "r", "high", url="data:text/html,<b>x</b>", created=earlier)
        s.commit()
    body = (await get(http.base + "/alerts.atom")).content
    root = ET.fromstring(body)  # well-formed XML despite NUL and ESC in the title
    assert b"<script>" not in body and b"\x00" not in body and b"\x1b" not in body
    ns = {"a": "http://www.w3.org/2005/Atom"}
    links = [el.get("href") for el in root.iterfind("a:entry/a:link", ns)]
    assert links == []  # neither javascript: nor data: becomes a link
    title = root.find("a:entry/a:title", ns)
    assert title is not None
    assert title.text == '[HIGH] Rule r: Fake</title><script>alert("x")</script> & ]]> [31m done'
    parsed = feedparser.parse(body)
    assert not parsed.bozo
    assert "URL (not linked): javascript:alert(1)" in parsed.entries[0].summary


async def test_an_empty_database_gives_an_empty_valid_feed(http: Running) -> None:
    parsed = feedparser.parse((await get(http.base + "/alerts.atom")).content)
    assert not parsed.bozo and parsed.entries == [] and parsed.feed.id.startswith("urn:uuid:")


async def test_unknown_paths_are_404(http: Running) -> None:
    assert (await get(http.base + "/")).status_code == 404
    assert (await get(http.base + "/admin")).status_code == 404


# --- binding -------------------------------------------------------------------------------


async def test_port_0_binds_a_free_port_and_a_taken_port_is_an_error_not_a_crash(
    engine: sa.Engine,
) -> None:
    metrics = make_metrics(engine)
    with capture_logs() as logs:
        first = await server.serve(
            engine, metrics, "127.0.0.1", 0, watchlist=lambda: WATCHLIST, running=lambda: True
        )
        assert first is not None and first.address is not None
        host, port = split_listen(first.address)
        assert host == "127.0.0.1" and port > 0
        try:
            second = await server.serve(
                engine,
                metrics,
                "127.0.0.1",
                port,
                watchlist=lambda: WATCHLIST,
                running=lambda: True,
            )
            assert second is None
        finally:
            await first.stop()
    events = {e["event"]: e for e in logs}
    assert events["http_listening"]["address"] == first.address
    assert events["http_failed"]["listen"] == f"127.0.0.1:{port}"


# --- the daemon ----------------------------------------------------------------------------


def rss(*items: tuple[str, str]) -> bytes:
    body = "".join(
        f"<item><title>{title}</title><link>{link}</link><guid>{link}</guid>"
        f"<description>{title}, the wire says.</description></item>"
        for title, link in items
    )
    return (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>Wire</title>"
        f"<link>https://example.org/</link><description>d</description>{body}</channel></rss>"
    ).encode()


class Daemon:
    """`monitor run` in its own process; its JSON log lines, kept and readable with a
    deadline."""

    def __init__(self, config: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.raw: list[str] = []
        self._events: queue.Queue[dict[str, object]] = queue.Queue()
        self._pump = threading.Thread(target=self._read, daemon=True)
        self._pump.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            try:
                self._events.put(json.loads(line))
            except ValueError:
                self._events.put({"event": "(not json)", "line": line})

    def wait_event(self, name: str, timeout: float = 20) -> dict[str, object]:
        return self.wait_events(name, timeout=timeout)[name]

    def wait_events(self, *names: str, timeout: float = 20) -> dict[str, dict[str, object]]:
        """The first of each named event from here on, in whatever order they come."""
        found: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(names) and (left := deadline - time.monotonic()) > 0:
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                break
            name = str(event.get("event"))
            if name in names and name not in found:
                found[name] = event
        missing = [n for n in names if n not in found]
        if missing:
            raise AssertionError(
                f"no {missing} event within {timeout}s:\n" + "".join(self.raw[-20:])
            )
        return found

    def stop(self) -> int:
        """SIGTERM; the exit code; every line it printed is in `raw` afterwards."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._pump.join(5)


def test_the_daemon_serves_its_health_metrics_and_alerts(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    stories = [
        ("North Korea fires a missile into the sea", "https://example.org/news/launch"),
        ("Weather: sunny", "https://example.org/news/weather"),
        ("North Korea shows a new missile at a parade", "https://example.org/news/parade"),
    ]
    feed_server.routes["/wire.xml"] = Route(rss(*stories))
    (tmp_path / "watchlist.yaml").write_text(
        "rules:\n  - {id: dprk, name: DPRK missiles, query: 'North Korea + missile'}\n"
    )
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path}/m.db\n"
        f"watchlist: {tmp_path / 'watchlist.yaml'}\n"
        "poll: {allow_private_networks: true}\n"
        f"feeds:\n  - {{id: wire, url: '{feed_server.url('/wire.xml')}', backfill: true}}\n"
        "server: {listen: '127.0.0.1:0'}\n"
    )
    daemon = Daemon(config)
    try:
        address = daemon.wait_event("http_listening")["address"]
        base = f"http://{address}"
        for _ in range(2):  # logged once each delivery is recorded as sent
            daemon.wait_event("delivered")
        with httpx.Client(base_url=base, trust_env=False, timeout=10) as client:
            health = client.get("/healthz")
            assert health.status_code == 200, health.text
            assert health.json()["watchlist"]["rules"] == 1

            v = samples(client.get("/metrics").text)
            sent = (("channel", "console"), ("status", "sent"))
            assert v[("monitor_deliveries", sent)] == 2
            assert v[("monitor_fetches_total", (("status", "200"),))] >= 1
            assert v[("monitor_items_new_total", ())] == 3
            assert v[("monitor_alerts_total", (("rule", "dprk"), ("severity", "medium")))] == 2
            assert v[("monitor_feeds", (("state", "ok"),))] == 1

            parsed = feedparser.parse(client.get("/alerts.atom").content)
            assert not parsed.bozo
            links = sorted(e.link for e in parsed.entries)
            assert links == ["https://example.org/news/launch", "https://example.org/news/parade"]
            assert all(
                e.title.startswith("[MEDIUM] DPRK missiles: North Korea") for e in parsed.entries
            )
    finally:
        code = daemon.stop()
    assert code == 0
    with pytest.raises(httpx.ConnectError):  # the endpoint went away with the daemon
        httpx.get(base + "/healthz", trust_env=False)
