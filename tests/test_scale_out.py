"""Scale-out: several `monitor run` processes on one PostgreSQL database share the feeds and
the delivery queue. No feed is fetched twice in a cycle, no alert is sent twice, and a process
killed with SIGKILL leaves its feeds and its leased deliveries to the others.

Real parts only: `monitor run` subprocesses, a fresh PostgreSQL database per test, a feed
server that notes the time and User-Agent of every request, and one webhook receiver per
daemon. Each daemon has its own monitor.yaml, identical except for its User-Agent, its
receiver URL (the channel is the same, `ops`) and its PostgreSQL application_name, so every
fetch, every send and every database session can be traced to the process that made it.

Two daemons with ticks a second apart rarely want the same row at the same instant. To make
them, the test holds the rows (SELECT ... FOR UPDATE) while both daemons find them due and
try to claim them, and lets go once PostgreSQL shows a claim of each daemon waiting: both
UPDATEs then run against the same rows, and exactly one of them may win each row.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from monitor import db
from tests.feedserver import FeedServer, Route
from tests.servers import ReceivedRequest, Reply, WebhookReceiver
from tests.test_rule_lifecycle import Daemon

pytestmark = pytest.mark.postgres

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FEEDS = [f"f{i:02d}" for i in range(20)]
BACKFILL = FEEDS[::2]  # these alert on the items already there at the first poll
INTERVAL = 3.0  # the feeds' poll interval, seconds; jitter 0
# One more feed, a local file polled every second, makes the daemons look for due work every
# second (the tick is the shortest interval): a claim the test holds back waits at most about
# a second for the other daemon's, well within INTERVAL. (A poll's next due time counts from
# before its claim, so a claim held back for a whole interval would be due again at once.)
PULSE = "pulse"
TIMEOUT = 1.0  # the webhook channel's timeout: a claimed send is leased for TIMEOUT + 10 s
LEASE = TIMEOUT + 10
# A claim, as PostgreSQL shows it in pg_stat_activity (store.claim_feed, store.claim_delivery).
CLAIMS = {
    "feed": r"^UPDATE feed SET next_due_at=[^,]* WHERE ",
    "delivery": r"^UPDATE delivery SET attempts=",
}
HELD = 202  # the status the victim's receiver holds back (5 s) until the victim is dead


# --- a feed server that knows who fetched what, and when ------------------------------------


@dataclass(frozen=True)
class Fetch:
    feed: str
    agent: str  # the User-Agent: which daemon fetched
    at: float  # time.monotonic() when the request arrived


class TimedFeedServer(FeedServer):
    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[Fetch] = []
        self._fetch_lock = threading.Lock()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        fetch = Fetch(
            h.path.strip("/").removesuffix(".xml"),
            h.headers.get("User-Agent", ""),
            time.monotonic(),
        )
        with self._fetch_lock:
            self.fetches.append(fetch)
        super()._serve(h)

    def of(self, feed: str, agent: str | None = None, after: float = 0.0) -> list[Fetch]:
        with self._fetch_lock:
            return [
                f
                for f in self.fetches
                if f.feed == feed and f.at >= after and (agent is None or f.agent == agent)
            ]


class News:
    """The 20 feeds' contents. Every item has its own link and text (no story dedup between
    them); matching items say "missile", the others do not."""

    def __init__(self, server: FeedServer) -> None:
        self.server = server
        self.items: dict[str, list[tuple[str, str]]] = {f: [] for f in FEEDS}
        self.matching: set[str] = set()  # titles the rule matches
        for feed in FEEDS:
            self.add(feed, f"{feed} weather report", match=False)
            self.add(feed, f"{feed} missile launch 0")
            self.add(feed, f"{feed} missile launch 1")

    def add(self, feed: str, title: str, *, match: bool = True) -> None:
        text = f"{title}: officials confirmed the missile test." if match else f"{title}: rain."
        self.items[feed].append((title, text))
        if match:
            self.matching.add(title)
        body = "".join(
            f"<item><title>{t}</title><link>https://news.example.org/{feed}/{n}</link>"
            f"<guid>{feed}-{n}</guid><description>{d}</description></item>"
            for n, (t, d) in enumerate(self.items[feed])
        )
        self.server.routes[f"/{feed}.xml"] = Route(
            "<?xml version='1.0'?><rss version='2.0'><channel><title>wire</title>"
            f"<link>https://news.example.org/</link><description>d</description>{body}"
            "</channel></rss>".encode()
        )

    def round(self, name: str) -> set[str]:
        """One new matching item in every feed; returns their titles."""
        for feed in FEEDS:
            self.add(feed, f"{feed} missile launch {name}")
        return {f"{feed} missile launch {name}" for feed in FEEDS}

    def expected(self) -> set[str]:
        """Alerts owed: every matching item, less those a non-backfill feed already had at
        its first poll (recorded without alerting)."""
        first = {f"{f} missile launch {n}" for f in FEEDS if f not in BACKFILL for n in (0, 1)}
        return self.matching - first


# --- the daemons ----------------------------------------------------------------------------


def agent(name: str) -> str:
    return f"scale-out-test/{name}"


def app(name: str) -> str:
    return f"monitor-{name}"


def config(
    tmp_path: Path, name: str, pg_url: str, server: FeedServer, hook: WebhookReceiver
) -> Path:
    """Daemon `name`'s monitor.yaml: the shared database, watchlist, feeds and channel name;
    its own User-Agent, receiver URL and application_name."""
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text("rules:\n  - {id: launches, name: Launches, query: missile}\n")
    pulse = tmp_path / "pulse.xml"
    pulse.write_text(
        "<?xml version='1.0'?><rss version='2.0'><channel><title>pulse</title>"
        "<link>https://news.example.org/</link><description>d</description></channel></rss>"
    )
    database = sa.engine.make_url(pg_url).update_query_dict({"application_name": app(name)})
    feeds = "".join(
        f"  - {{id: {f}, url: '{server.url(f'/{f}.xml')}'"
        + (", backfill: true" if f in BACKFILL else "")
        + "}\n"
        for f in FEEDS
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"database: '{database.render_as_string(hide_password=False)}'\n"
        f"watchlist: {watchlist}\n"
        f"poll: {{allow_private_networks: true, interval: {INTERVAL:g}s, jitter: 0s,"
        f" per_host: 20, timeout: 5s, user_agent: {agent(name)}}}\n"
        "server: {listen: '127.0.0.1:0'}\n"
        f"feeds:\n{feeds}  - {{id: {PULSE}, url: '{pulse}', interval: 1s}}\n"
        f"channels:\n  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET},"
        f" timeout: {TIMEOUT:g}s, burst: 1000}}\n"
    )
    return path


class Logged(Daemon):
    """A Daemon that also keeps every log line it printed."""

    def __init__(self, config: Path) -> None:
        self.events: list[dict[str, Any]] = []
        super().__init__(config)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "raw", "line": line}
            self.events.append(event)
            self.lines.put(event)

    def delivered(self) -> list[str]:
        """Alert ids this process logged as delivered."""
        return [a for e in list(self.events) if e.get("event") == "delivered" for a in e["alerts"]]


def until(check: Callable[[], object], timeout: float, what: Callable[[], str] | str) -> None:
    """Poll `check` (every 10 ms) until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout}s: {what() if callable(what) else what}")
        time.sleep(0.01)


def titles(requests: list[ReceivedRequest]) -> list[str]:
    return [r.json["item"]["title"] for r in requests]


def ok(requests: list[ReceivedRequest]) -> list[ReceivedRequest]:
    """The sends that were answered 200 (delivered)."""
    return [r for r in requests if r.reply == 200]


@dataclass
class Cluster:
    server: TimedFeedServer
    news: News
    hooks: dict[str, WebhookReceiver]
    daemons: dict[str, Logged]
    engine: sa.Engine  # the test's own view of the shared database

    def requests(self) -> list[ReceivedRequest]:
        return [r for h in self.hooks.values() for r in h.requests]

    def delivered(self) -> set[str]:
        return set(titles(ok(self.requests())))

    def wait_delivered(self, timeout: float = 30) -> None:
        until(
            lambda: self.delivered() >= self.news.expected(),
            timeout,
            lambda: f"undelivered: {sorted(self.news.expected() - self.delivered())}",
        )

    def sql(self, query: str, **params: object) -> list[tuple[Any, ...]]:
        with self.engine.connect() as c:
            return [tuple(row) for row in c.execute(sa.text(query), params)]

    def waiting(self, table: str) -> set[str]:
        """The daemons (application names) with a claim of `table` waiting on a row lock."""
        rows = self.sql(
            "SELECT DISTINCT application_name FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND query ~ :claim",
            claim=CLAIMS[table],
        )
        return {r[0] for r in rows}

    @contextmanager
    def contended(self, table: str, where: str, busy: str) -> Iterator[None]:
        """Hold `table`'s rows while the block runs and until a claim of every daemon waits
        on them; then let go, so that the daemons' claims race for the same rows. The rows
        are taken at a moment when none is `busy` (claimed by a poll or send in progress,
        which would leave the others nothing to claim)."""
        everyone = {app(n) for n in self.daemons}
        deadline = time.monotonic() + 10
        while True:
            with self.engine.connect() as c:
                held = c.execute(sa.text(f"SELECT id FROM {table} WHERE {where} FOR UPDATE"))
                assert held.all(), f"no {table} rows to hold"
                busy_now = f"SELECT 1 FROM {table} WHERE {where} AND {busy}"
                if not c.execute(sa.text(busy_now)).first():
                    yield
                    until(
                        lambda: self.waiting(table) == everyone,
                        15,
                        lambda: f"claims of {table} waiting: {self.waiting(table)}",
                    )
                    c.rollback()
                    return
                c.rollback()
            assert time.monotonic() < deadline, f"{table}: always busy"
            time.sleep(0.02)


@contextmanager
def cluster(
    tmp_path: Path, pg_url: str, names: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    """The feed server, one receiver per daemon and the daemons, started one after the other:
    each once the previous has logged `started`. (Started together on a fresh database they
    race to insert the same schema_version, feed and rulestate rows, and the losers exit 1.
    That is a bug of monitor/, db.upgrade, store.sync_feeds and store.activate_rules; these
    tests are about sharing the work once running.)"""
    # A daemon opens 20 connections at once (20 fetches, 20 sends). With the socketserver
    # default listen backlog of 5 the kernel drops the other SYNs and the client resends them
    # after 1 s: a 1 s webhook timeout would expire. Real servers listen with 128 or more.
    monkeypatch.setattr(ThreadingHTTPServer, "request_queue_size", 128)
    with ExitStack() as stack:
        server = TimedFeedServer()
        stack.enter_context(server)
        news = News(server)
        hooks = {
            n: stack.enter_context(WebhookReceiver(secret=SECRET, path=f"/{n}")) for n in names
        }
        engine = db.make_engine(pg_url)
        stack.callback(engine.dispose)
        daemons: dict[str, Logged] = {}

        def kill_all() -> None:
            for name, d in daemons.items():
                if d.proc.poll() is None:
                    d.proc.kill()
                    d.proc.wait()
                for event in d.events:  # shown by pytest when the test fails
                    print(name, json.dumps(event))

        stack.callback(kill_all)
        for n in names:
            daemons[n] = Logged(config(tmp_path, n, pg_url, server, hooks[n]))
            daemons[n].wait_event("started", timeout=30)
        cl = Cluster(server, news, hooks, daemons, engine)
        # Every feed polled once (so the non-backfill ones are initialized), its backfill
        # alerts delivered, and every daemon at work.
        until(
            lambda: all(server.of(f) for f in FEEDS),
            20,
            lambda: f"unfetched: {[f for f in FEEDS if not server.of(f)]}",
        )
        cl.wait_delivered()
        until(
            lambda: all(any(f.agent == agent(n) for f in server.fetches) for n in names),
            20,
            lambda: f"fetches by: {Counter(f.agent for f in server.fetches)}",
        )
        yield cl


def check_cycles(server: TimedFeedServer) -> None:
    """No feed fetched twice in one cycle: consecutive fetches of a feed are about an
    interval apart (a double fetch would be milliseconds apart), whoever made them."""
    for feed in FEEDS:
        times = sorted(f.at for f in server.of(feed))
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(times)]
        assert min(gaps, default=INTERVAL) >= INTERVAL / 2, (feed, gaps)
        assert len(times) <= (times[-1] - times[0] + 0.5) / INTERVAL + 1, (feed, gaps)


# --- the tests ------------------------------------------------------------------------------


def test_two_daemons_share_feeds_and_deliveries(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cluster(tmp_path, pg_url, ("a", "b"), monkeypatch) as cl:
        # Both daemons claim the same due feeds at once: each feed is fetched by one.
        feeds, leased = f"id <> '{PULSE}'", "next_due_at > timezone('utc', now()) + '1 min'"
        with cl.contended("feed", feeds, leased):
            cl.news.round("2")
        cl.wait_delivered()

        # Both daemons claim the same due deliveries at once: each alert is sent by one.
        # (Every send of round 3 is first answered 503, Retry-After 8 s: a feed is polled at
        # most 4 s after its update, so all are then due again, a few seconds apart, while
        # the test holds them.)
        busy = Reply(503, {"Retry-After": "8"})
        for hook in cl.hooks.values():
            hook.script(*[busy] * len(FEEDS))
        round3 = cl.news.round("3")
        retrying = (
            "SELECT count(*) FROM delivery WHERE status = 'pending' AND attempts = 1"
            " AND last_error IS NOT NULL AND next_attempt_at > timezone('utc', now())"
        )
        until(lambda: cl.sql(retrying)[0][0] == len(FEEDS), 20, "round 3 answered 503")
        for hook in cl.hooks.values():
            hook.script()  # 200 from now on
        soon = "next_attempt_at > timezone('utc', now()) + '9 s'"  # in flight: leased 11 s
        with cl.contended("delivery", "status = 'pending'", soon):
            pass
        cl.wait_delivered()

        # More news until each daemon has sent some (whichever polls a feed first after its
        # update usually sends its alert).
        for n in range(4, 14):
            if all(ok(h.requests) for h in cl.hooks.values()):
                break
            cl.news.round(str(n))
            cl.wait_delivered()
        for d in cl.daemons.values():
            assert d.stop() == 0

    check_cycles(cl.server)
    for name in cl.daemons:  # both polled
        assert any(f.agent == agent(name) for f in cl.server.fetches), name

    got = cl.requests()
    assert all(r.verified for r in got)
    sent = Counter(r.headers["webhook-id"] for r in ok(got))
    assert [i for i, n in sent.items() if n > 1] == []  # no alert sent twice, by anyone
    assert sorted(titles(ok(got))) == sorted(cl.news.expected())  # every alert, once
    refused = [r for r in got if r.reply == 503]
    assert sorted(titles(refused)) == sorted(round3)  # round 3's first attempts, once each
    for name, d in cl.daemons.items():  # both sent some, and logged exactly those
        mine = [r.headers["webhook-id"] for r in ok(cl.hooks[name].requests)]
        assert mine, f"daemon {name} delivered nothing"
        assert sorted(d.delivered()) == sorted(mine)
    [(alerts, once, twice)] = cl.sql(
        "SELECT (SELECT count(*) FROM alert),"
        " (SELECT count(*) FROM delivery WHERE status = 'sent' AND attempts = 1),"
        " (SELECT count(*) FROM delivery WHERE status = 'sent' AND attempts = 2)"
    )
    assert (alerts, once + twice, twice) == (len(cl.news.expected()),) * 2 + (len(round3),)


def test_a_killed_daemon_leaves_its_feeds_and_deliveries_to_the_survivor(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cluster(tmp_path, pg_url, ("a", "b"), monkeypatch) as cl:
        victim, survivor = cl.daemons["a"], cl.daemons["b"]
        # From now on the victim's receiver holds every request for 5 s (past the channel's
        # 1 s timeout); the victim dies as soon as one of its sends is in flight.
        cl.hooks["a"].script(*[Reply(HELD, delay=5)] * 200)

        def in_flight() -> set[str]:
            return {r.headers["webhook-id"] for r in cl.hooks["a"].requests if r.reply == HELD}

        for n in range(2, 12):
            cl.news.round(str(n))
            until(
                lambda: in_flight() or cl.delivered() >= cl.news.expected(),
                15,
                "the new items delivered, or one in flight at the victim",
            )
            if in_flight():
                break
        else:
            pytest.fail("the victim never sent anything: it polled none of 200 new items")
        # Not while a poll is under way (its feeds would wait out their 5-minute lease):
        # there is about half a second before the victim's send times out.
        leased = (
            f"SELECT 1 FROM feed WHERE id <> '{PULSE}'"
            " AND next_due_at > timezone('utc', now()) + '1 min'"
        )
        polling_until = time.monotonic() + 0.5
        while cl.sql(leased) and time.monotonic() < polling_until:
            time.sleep(0.01)
        victim.proc.kill()
        killed_at, killed_wall = time.monotonic(), time.time()
        victim.proc.wait()

        # The survivor polls every feed (the victim's included) and sends everything: the
        # victim's unsent alerts at once, the ones it held in flight after their lease.
        cl.news.round("after")
        until(
            lambda: all(cl.server.of(f, agent("b"), after=killed_at) for f in FEEDS),
            20,
            lambda: (
                "not fetched since the kill: "
                f"{[f for f in FEEDS if not cl.server.of(f, agent('b'), after=killed_at)]}"
            ),
        )
        cl.wait_delivered(LEASE + 20)
        assert survivor.stop() == 0

    check_cycles(cl.server)  # the handover fetched nothing twice either
    held = in_flight()
    got = cl.requests()
    assert all(r.verified for r in got)
    assert sorted(titles(ok(got))) == sorted(cl.news.expected())  # every alert delivered, once
    sent = Counter(r.headers["webhook-id"] for r in ok(got))
    assert [i for i, n in sent.items() if n > 1] == []
    # The only repeats: the sends the victim had in flight, once more each, same webhook-id.
    attempts = Counter(r.headers["webhook-id"] for r in got)
    assert {i for i, n in attempts.items() if n > 1} == held
    assert held <= set(sent) and max(attempts.values()) == 2
    assert not set(victim.delivered()) & held  # the victim never saw them through
    # ... and not before the lease ran out (the victim claimed them less than a timeout
    # before it died), so a slow send is never doubled by an impatient neighbour.
    rows = cl.sql(
        "SELECT alert_id, status, attempts, sent_at FROM delivery WHERE alert_id = ANY(:ids)",
        ids=sorted(held),
    )
    assert len(rows) == len(held)
    for alert_id, status, tries, sent_at in rows:
        assert status == "sent" and tries == 2, (alert_id, status, tries)
        taken = sent_at.replace(tzinfo=dt.UTC).timestamp() - killed_wall
        assert taken >= LEASE - TIMEOUT - 1, (alert_id, taken)
    [(alerts, unsent)] = cl.sql(
        "SELECT (SELECT count(*) FROM alert), (SELECT count(*) FROM delivery"
        " WHERE status <> 'sent')"
    )
    assert (alerts, unsent) == (len(cl.news.expected()), 0)
