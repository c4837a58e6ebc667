"""Scale-out: several `monitor run` processes on one PostgreSQL database share the feeds and
the delivery queue. Three workers started at the same instant on an empty database all come
up; over three cycles of 600 feeds every feed is fetched exactly once per cycle and every
alert is received exactly once; a worker killed with SIGKILL leaves its feeds and its
deliveries to the others, who take them when its leases run out, not before.

Real parts only: `monitor run` subprocesses, a fresh PostgreSQL database per test, a feed
server that notes the time and User-Agent of every request, and one verifying webhook
receiver per worker. Each worker has its own monitor.yaml, identical except for its
User-Agent and its receiver URL (the channel is the same, `ops`), so every fetch and every
send can be traced to the process that made it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from monitor import db
from tests.feedserver import FeedServer, Route
from tests.servers import ReceivedRequest, Reply, WebhookReceiver
from tests.test_rule_lifecycle import Daemon

pytestmark = pytest.mark.postgres

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FEEDS = [f"f{i:03d}" for i in range(600)]
INTERVAL = 4.0  # the feeds' poll interval, seconds; jitter 0
TIMEOUT = 2.0  # the fetch deadline and the webhook channel's timeout
PARSE_TIMEOUT = 2.0  # poll.parse_timeout: these feeds parse in milliseconds
FEED_LEASE = TIMEOUT + PARSE_TIMEOUT + 15  # scheduler.feed_lease: both deadlines, LEASE_MARGIN
SEND_LEASE = TIMEOUT + 10  # ChannelRoute.lease
HELD = 202  # the status the victim's receiver holds back until after the victim is dead


# --- a feed server that knows who fetched what, and when ------------------------------------


@dataclass(frozen=True)
class Fetch:
    feed: str
    agent: str  # the User-Agent: which worker fetched
    at: float  # time.monotonic() when the request arrived


class TimedFeedServer(FeedServer):
    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[Fetch] = []
        # A User-Agent whose requests for these feeds hang (past its deadline)
        self.stall: tuple[str, set[str]] | None = None
        self._fetch_lock = threading.Lock()

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        fetch = Fetch(
            h.path.strip("/").removesuffix(".xml"),
            h.headers.get("User-Agent", ""),
            time.monotonic(),
        )
        with self._fetch_lock:
            self.fetches.append(fetch)
        stall = self.stall
        if stall is not None and fetch.agent == stall[0] and fetch.feed in stall[1]:
            time.sleep(TIMEOUT + 1)  # the stalled worker's fetches are cut off by its deadline
            return
        super()._serve(h)

    def of(self, feed: str, agent: str | None = None, after: float = 0.0) -> list[Fetch]:
        with self._fetch_lock:
            return [
                f
                for f in self.fetches
                if f.feed == feed and f.at >= after and (agent is None or f.agent == agent)
            ]


class News:
    """The feeds' contents. Every third feed gets a new matching item each round; every item
    has its own link and text (no two are one story)."""

    def __init__(self, server: FeedServer) -> None:
        self.server = server
        self.items: dict[str, list[str]] = {f: [] for f in FEEDS}
        self.expected: set[str] = set()  # titles owed an alert
        for feed in FEEDS:
            self.add(feed, f"{feed} weather report", match=False)

    def add(self, feed: str, title: str, *, match: bool = True) -> None:
        self.items[feed].append(title)
        if match:
            self.expected.add(title)
        body = "".join(
            f"<item><title>{t}</title><link>https://news.example.org/{feed}/{n}</link>"
            f"<guid>{feed}-{n}</guid><description>{t}: "
            + ("officials confirmed the missile test." if "missile" in t else "rain.")
            + "</description></item>"
            for n, t in enumerate(self.items[feed])
        )
        self.server.routes[f"/{feed}.xml"] = Route(
            "<?xml version='1.0'?><rss version='2.0'><channel><title>wire</title>"
            f"<link>https://news.example.org/</link><description>d</description>{body}"
            "</channel></rss>".encode()
        )

    def round(self, name: str) -> None:
        for feed in FEEDS[::3]:
            self.add(feed, f"{feed} missile launch {name}")


# --- the workers ----------------------------------------------------------------------------


def agent(name: str) -> str:
    return f"scale-out-test/{name}"


def config(
    tmp_path: Path, name: str, pg_url: str, server: FeedServer, hook: WebhookReceiver
) -> Path:
    watchlist = tmp_path / "watchlist.yaml"
    watchlist.write_text("rules:\n  - {id: launches, name: Launches, query: missile}\n")
    feeds = "".join(f"  - {{id: {f}, url: '{server.url(f'/{f}.xml')}'}}\n" for f in FEEDS)
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"database: '{pg_url}'\n"
        f"watchlist: {watchlist}\n"
        # every feed every INTERVAL, whatever its cadence: the cycles below count on it
        f"poll: {{allow_private_networks: true, interval: {INTERVAL:g}s, jitter: 0s,"
        f" adaptive: false, concurrency: 40, per_host: 40, timeout: {TIMEOUT:g}s,"
        f" parse_timeout: {PARSE_TIMEOUT:g}s, user_agent: {agent(name)}}}\n"
        "server: {listen: '127.0.0.1:0'}\n"
        f"feeds:\n{feeds}"
        f"channels:\n  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET},"
        f" timeout: {TIMEOUT:g}s, burst: 100000}}\n"
    )
    return path


class Worker(Daemon):
    """A Daemon that keeps every log line it printed and knows its HTTP endpoint."""

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

    def health(self) -> dict[str, Any]:
        [address] = [e["address"] for e in self.events if e.get("event") == "http_listening"]
        return dict(httpx.get(f"http://{address}/healthz", timeout=5).json())

    def delivered(self) -> list[str]:
        return [a for e in list(self.events) if e.get("event") == "delivered" for a in e["alerts"]]


def until(check: Callable[[], object], timeout: float, what: Callable[[], str] | str) -> None:
    """Poll `check` (every 20 ms) until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"within {timeout}s: {what() if callable(what) else what}")
        time.sleep(0.02)


def titles(requests: list[ReceivedRequest]) -> list[str]:
    return [r.json["item"]["title"] for r in requests]


def ok(requests: list[ReceivedRequest]) -> list[ReceivedRequest]:
    return [r for r in requests if r.reply == 200]


@dataclass
class Cluster:
    server: TimedFeedServer
    news: News
    hooks: dict[str, WebhookReceiver]
    workers: dict[str, Worker]
    engine: sa.Engine

    def requests(self) -> list[ReceivedRequest]:
        return [r for h in self.hooks.values() for r in h.requests]

    def delivered(self) -> set[str]:
        return set(titles(ok(self.requests())))

    def wait_delivered(self, timeout: float = 40) -> None:
        until(lambda: self.delivered() >= self.news.expected, timeout, self.undelivered)

    def undelivered(self) -> str:
        missing = sorted(self.news.expected - self.delivered())[:5]
        rows = self.sql(
            "SELECT d.status, d.attempts, d.next_attempt_at, d.claimed_by, d.last_error, i.title"
            " FROM delivery d JOIN alert a ON a.id = d.alert_id JOIN item i ON i.id = a.item_id"
            " WHERE d.status <> 'sent'"
        )
        return f"undelivered: {missing}; unsent deliveries: {rows}"

    def sql(self, query: str, **params: object) -> list[tuple[Any, ...]]:
        with self.engine.connect() as c:
            return [tuple(row) for row in c.execute(sa.text(query), params)]

    def cycle(self) -> None:
        """Wait until every feed has been fetched once more (by anyone)."""
        start = time.monotonic()
        until(
            lambda: all(self.server.of(f, after=start) for f in FEEDS),
            INTERVAL * 4 + 10,
            lambda: f"unfetched: {sum(not self.server.of(f, after=start) for f in FEEDS)}",
        )


@contextmanager
def cluster(
    tmp_path: Path, pg_url: str, names: tuple[str, ...], stack: ExitStack
) -> Iterator[Cluster]:
    """The feed server, one receiver per worker, and the workers, all started at the same
    instant on the empty database: each one upgrades the schema (or waits for whoever does),
    adds the feeds and the rule, and starts."""
    server = TimedFeedServer()
    stack.enter_context(server)
    news = News(server)
    hooks = {n: stack.enter_context(WebhookReceiver(secret=SECRET, path=f"/{n}")) for n in names}
    engine = db.make_engine(pg_url)
    stack.callback(engine.dispose)
    configs = {n: config(tmp_path, n, pg_url, server, hooks[n]) for n in names}
    workers = {n: Worker(configs[n]) for n in names}

    def kill_all() -> None:
        for name, w in workers.items():
            if w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()
            for event in w.events[-40:]:  # shown by pytest when the test fails
                print(name, json.dumps(event))

    stack.callback(kill_all)
    for w in workers.values():
        w.wait_event("started", timeout=60)
    cl = Cluster(server, news, hooks, workers, engine)
    cl.cycle()  # every feed polled once: initialized, so new items from now on alert
    yield cl


def check_cycles(server: TimedFeedServer, leases: dict[str, float] | None = None) -> None:
    """No feed fetched twice in one cycle: consecutive fetches of a feed are about an
    interval apart (a double fetch would be milliseconds apart), whoever made them. A feed a
    killed worker held (`leases`: feed -> when its lease ended, monotonic) is fetched again
    only after its lease."""
    for feed in FEEDS:
        fetches = sorted(server.of(feed), key=lambda f: f.at)
        for a, b in itertools.pairwise(fetches):
            assert b.at - a.at >= INTERVAL / 2, (feed, a, b)
        if leases and feed in leases:
            # the dead worker's fetch was made at the claim, a lease before its end
            retaken = [f for f in fetches if f.at > leases[feed] - FEED_LEASE + 1]
            assert retaken and retaken[0].at >= leases[feed] - 0.5, (feed, leases[feed], retaken)


# --- the tests ------------------------------------------------------------------------------


def test_three_workers_share_600_feeds_fetching_each_once_per_cycle(
    tmp_path: Path, pg_url: str
) -> None:
    with ExitStack() as stack:
        cl = stack.enter_context(cluster(tmp_path, pg_url, ("a", "b", "c"), stack))
        for n in range(3):
            cl.news.round(str(n))
            cl.cycle()
        cl.wait_delivered()
        healths = {n: w.health() for n, w in cl.workers.items()}
        for w in cl.workers.values():
            assert w.stop() == 0

    check_cycles(cl.server)
    by = Counter(f.agent for f in cl.server.fetches)
    assert all(by[agent(n)] > len(FEEDS) / 10 for n in cl.workers), by  # all three worked
    got = cl.requests()
    assert all(r.verified for r in got)
    sent = Counter(r.headers["webhook-id"] for r in ok(got))
    assert [i for i, n in sent.items() if n > 1] == []  # no alert sent twice, by anyone
    assert sorted(titles(ok(got))) == sorted(cl.news.expected)  # every alert, once
    assert len(got) == len(cl.news.expected)  # and no attempt wasted
    for health in healths.values():
        worker = health["worker"]
        assert worker["id"].count(":") == 2, worker
        assert worker["claims"]["feed"] > len(FEEDS) / 10, worker
        assert worker["lease_expiries"] == {"feed": 0, "delivery": 0}, worker
    [(alerts, attempts)] = cl.sql(
        "SELECT (SELECT count(*) FROM alert), (SELECT sum(attempts) FROM delivery)"
    )
    assert alerts == attempts == len(cl.news.expected)


def test_a_killed_worker_leaves_its_feeds_and_deliveries_to_the_others(
    tmp_path: Path, pg_url: str
) -> None:
    with ExitStack() as stack:
        cl = stack.enter_context(cluster(tmp_path, pg_url, ("a", "b", "c"), stack))
        victim = cl.workers["a"]
        # From now on the victim's sends are held past its timeout, and its fetches of the
        # feeds without news hang: polling the others, it keeps making alerts and sending
        # them, so that it dies holding feeds and sends.
        cl.hooks["a"].script(*[Reply(HELD, delay=TIMEOUT + 3)] * 1000)
        quiet = set(FEEDS) - set(FEEDS[::3])
        cl.server.stall = (agent("a"), quiet)
        cl.news.round("0")

        def held() -> set[str]:
            return {
                r.headers["webhook-id"]
                for r in cl.hooks["a"].requests
                if r.reply == HELD and r.json is not None  # (not one cut short by the kill)
            }

        def claims_of(worker: str) -> tuple[dict[str, dt.datetime], dict[str, dt.datetime]]:
            """What `worker` holds now, by the database: feed -> lease end, alert -> lease end."""
            feeds = cl.sql(
                "SELECT id, next_due_at FROM feed WHERE claimed_by = :w AND next_due_at > "
                "timezone('utc', now())",
                w=worker,
            )
            sends = cl.sql(
                "SELECT alert_id, next_attempt_at FROM delivery WHERE claimed_by = :w AND "
                "status = 'pending' AND next_attempt_at > timezone('utc', now())",
                w=worker,
            )
            return dict(feeds), dict(sends)

        [me] = [e["worker"] for e in victim.events if e.get("event") == "started"]
        # News keeps coming (a round per interval) until the victim is seen holding both at
        # once: its sends are claimed only while an attempt runs (TIMEOUT), after a poll.
        for n in itertools.count(1):
            try:
                until(lambda: all(claims_of(str(me))) and held(), INTERVAL + 2, "")
                break
            except AssertionError:
                assert n < 10, "the victim never held feeds and sends at once"
                cl.news.round(f"0.{n}")
        victim.proc.kill()
        killed_at, killed_wall = time.monotonic(), time.time()
        victim.proc.wait()
        feeds_held, sends_held = claims_of(str(me))  # a dead worker's claims stay as they were
        leases = {
            f: killed_at + (end.replace(tzinfo=dt.UTC).timestamp() - killed_wall)
            for f, end in feeds_held.items()
        }

        cl.news.round("after")
        until(
            lambda: all(
                any(f.agent != agent("a") for f in cl.server.of(feed, after=killed_at))
                for feed in FEEDS
            ),
            FEED_LEASE + INTERVAL + 20,
            "every feed fetched by the survivors since the kill",
        )
        cl.wait_delivered(SEND_LEASE + 30)

        # A take-over is counted when that poll or send is done (stored, settled), a moment
        # after the fetch the server saw: wait for the counts to settle, then compare.
        def survivors() -> dict[str, Any]:
            return {n: cl.workers[n].health()["worker"] for n in ("b", "c")}

        def taken(kind: str) -> int:
            return sum(w["lease_expiries"][kind] for w in survivors().values())

        with contextlib.suppress(AssertionError):
            until(
                lambda: taken("feed") >= len(feeds_held) and taken("delivery") >= len(sends_held),
                15,
                "",
            )
        final = survivors()
        for n in ("b", "c"):
            assert cl.workers[n].stop() == 0

    assert feeds_held and sends_held
    check_cycles(cl.server, leases)
    # The sends the victim had in flight when it died arrived cut short: never a delivery,
    # and each was one of the deliveries it held (how many were in flight at once depends
    # on how many alerts its last batches made, not on the kill).
    cut = [r for r in cl.requests() if r.json is None]
    assert all(r in cl.hooks["a"].requests for r in cut), cut
    assert len(cut) <= len(sends_held), (len(cut), len(sends_held))
    got = [r for r in cl.requests() if r.json is not None]
    assert all(r.verified for r in got)
    assert sorted(titles(ok(got))) == sorted(cl.news.expected)  # every alert delivered, once
    sent = Counter(r.headers["webhook-id"] for r in ok(got))
    assert [i for i, n in sent.items() if n > 1] == []
    # The only repeats: the sends the victim held back, once more each, same webhook-id (a
    # held send that timed out before the kill was retried after its backoff; those in
    # flight at the kill were taken over after their lease, not before).
    attempts = Counter(r.headers["webhook-id"] for r in got)
    assert {i for i, n in attempts.items() if n > 1} == held()
    assert max(attempts.values()) == 2 and not set(victim.delivered()) & held()
    # (a send the victim had claimed may not have reached the receiver before it died: it
    # was still attempted once more, after its lease)
    rows = cl.sql(
        "SELECT alert_id, status, attempts, sent_at FROM delivery WHERE alert_id = ANY(:ids)",
        ids=sorted(sends_held),
    )
    assert len(rows) == len(sends_held)
    for alert_id, status, tries, sent_at in rows:
        assert status == "sent" and tries == 2
        assert sent_at >= sends_held[alert_id] - dt.timedelta(seconds=0.5), alert_id
    # The survivors count each claim they took over from the dead worker.
    feeds_taken = sum(w["lease_expiries"]["feed"] for w in final.values())
    sends_taken = sum(w["lease_expiries"]["delivery"] for w in final.values())
    assert feeds_taken == len(feeds_held), (feeds_held, final)
    assert sends_taken == len(sends_held), (sends_held, final)
    [(unsent,)] = cl.sql("SELECT count(*) FROM delivery WHERE status <> 'sent'")
    assert unsent == 0
