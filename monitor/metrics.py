"""Prometheus metrics for /metrics, in a registry of our own (never the process-global one, so
tests and several daemons in one process do not share counters).

Two kinds of numbers:
- events this process saw, counted as they happen by observers on the pipeline
  (`Context.on_feed`, `Context.on_delivery`): fetches by status, fetch duration, new items,
  delivery attempts by channel and result;
- state that lives in the database, read at scrape time by `DatabaseCollector`: alerts by rule
  and severity, deliveries by channel and status, outbox depth and oldest pending age, feeds
  by health state (as health.py set it on each row) and changes of health state. Reading
  the database rather than counting in memory makes these right
  across restarts and for several processes sharing one PostgreSQL.

`render()` runs the collectors, including the database queries, so it blocks: the HTTP server
calls it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import __version__, db, store
from monitor.db import Engine
from monitor.errors import StoreError
from monitor.models import utcnow
from monitor.outcomes import DeliveryOutcome, FeedOutcome

log = structlog.get_logger("monitor.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FETCH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FEED_STATES = ("ok", "failing", "stale", "never")
DELIVERY_STATES = ("pending", "sent", "dead")


@dataclass(frozen=True, slots=True)
class WatchlistStatus:
    """What /healthz and /metrics tell about the rules in force (read from the scheduler's
    LiveRules through a callable, so this module does not depend on it)."""

    version: str
    rules: int
    reloads: int
    reload_errors: int
    last_error: str | None
    regex_timeouts: int = 0  # /regex/ searches cut off (counted as no match)


class Metrics:
    """The registry, the event counters and the observers that feed them."""

    def __init__(
        self,
        engine: Engine,
        *,
        feeds: Mapping[str, dt.timedelta],
        channels: Iterable[str],
        watchlist: Callable[[], WatchlistStatus],
        running: Callable[[], bool] = lambda: True,
        worker: str = "worker",
    ) -> None:
        self.worker = worker
        # No `*_created` sample beside every counter: they double the output and Prometheus
        # does not need them in the text format.
        disable_created_metrics()
        self.registry = CollectorRegistry()
        r = self.registry
        self.fetches = Counter(
            "monitor_fetches",
            "Feed fetches by result: the HTTP status, or the error kind when there was none.",
            ["status"],
            registry=r,
        )
        self.fetch_duration = Histogram(
            "monitor_fetch_duration_seconds",
            "Time to fetch a feed (request and body; errors included).",
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self.new_items = Counter(
            "monitor_items_new", "Items stored as new or changed by this process.", registry=r
        )
        self.alerts_created = Counter(
            "monitor_alerts_created",
            "Alerts created by this process: by its polls and by the backfills of new rules.",
            registry=r,
        )
        self.held_back = Counter(
            "monitor_cooldown_held_back",
            "Matches a rule's cooldown held back (no alert; the rule's next alert counts them).",
            ["rule"],
            registry=r,
        )
        self.pages = Counter(
            "monitor_pages",
            "Full text: new items' linked pages by result: ok, cached (read for another item), "
            "or why the item kept the feed's text (FetchHTTPError, FetchTooLarge, FetchTimeout, "
            "FetchBlocked, ExtractError, WorkerFailed, deadline).",
            ["result"],
            registry=r,
        )
        self.attempts = Counter(
            "monitor_delivery_attempts",
            "Delivery attempts by this process, by channel and result (sent, retry, dead).",
            ["channel", "result"],
            registry=r,
        )
        info = Gauge(
            "monitor_info", "This monitor's version and worker id.", ["version", "worker"],
            registry=r,
        )  # fmt: skip
        info.labels(version=__version__, worker=worker).set(1)
        self.claims = Counter(
            "monitor_claims",
            "What this worker claimed: feeds to poll, deliveries to attempt.",
            ["kind"],
            registry=r,
        )
        self.lease_expiries = Counter(
            "monitor_lease_expiries",
            "Claims this worker took over because another's lease ran out unsettled (a worker "
            "that died or stalled): feeds, deliveries.",
            ["kind"],
            registry=r,
        )
        self._counts = {
            "claims": {"feed": 0, "delivery": 0},
            "lease_expiries": {"feed": 0, "delivery": 0},
        }
        ProcessCollector(registry=r)
        r.register(StateCollector(watchlist, running))
        r.register(DatabaseCollector(engine, feeds, tuple(channels)))

    def _claimed(self, kind: str, took_over: bool) -> None:
        self.claims.labels(kind=kind).inc()
        self._counts["claims"][kind] += 1
        if took_over:
            self.lease_expiries.labels(kind=kind).inc()
            self._counts["lease_expiries"][kind] += 1

    def worker_status(self) -> dict[str, object]:
        """For /healthz: this worker's id, its claims and the leases it took over."""
        return {"id": self.worker, **{k: dict(v) for k, v in self._counts.items()}}

    def observe_feed(self, outcome: FeedOutcome) -> None:
        self._claimed("feed", outcome.took_over)
        status = str(outcome.status) if outcome.status else (outcome.error_kind or "error")
        self.fetches.labels(status=status).inc()
        self.fetch_duration.observe(outcome.elapsed)
        if outcome.new or outcome.changed:
            self.new_items.inc(outcome.new + outcome.changed)
        for rule, n in outcome.held_back.items():
            self.held_back.labels(rule=rule).inc(n)
        if outcome.alerts:
            self.alerts_created.inc(outcome.alerts)
        for result, n in outcome.pages.items():
            self.pages.labels(result=result).inc(n)

    def observe_alerts(self, n: int) -> None:
        """Alerts a backfill created (polls' alerts come with their feed outcome)."""
        if n:
            self.alerts_created.inc(n)

    def observe_delivery(self, outcome: DeliveryOutcome) -> None:
        self._claimed("delivery", outcome.took_over)
        self.attempts.labels(channel=outcome.channel, result=outcome.result).inc()

    def render(self) -> bytes:
        """The Prometheus text format. Blocking (database queries): call it in a thread."""
        return generate_latest(self.registry)


class StateCollector(Collector):
    """Scheduler and watchlist state, read at scrape time."""

    def __init__(self, watchlist: Callable[[], WatchlistStatus], running: Callable[[], bool]):
        self._watchlist = watchlist
        self._running = running

    def collect(self) -> Iterable[Metric]:
        w = self._watchlist()
        yield GaugeMetricFamily(
            "monitor_scheduler_running",
            "1 while the scheduler runs (polls and deliveries are being scheduled).",
            value=1 if self._running() else 0,
        )
        info = GaugeMetricFamily(
            "monitor_watchlist_info", "The watchlist version in force.", labels=["version"]
        )
        info.add_metric([w.version], 1)
        yield info
        yield GaugeMetricFamily("monitor_watchlist_rules", "Rules in force.", value=w.rules)
        yield CounterMetricFamily(
            "monitor_watchlist_reloads",
            "Watchlist edits that went live without a restart.",
            value=w.reloads,
        )
        yield CounterMetricFamily(
            "monitor_watchlist_reload_errors",
            "Watchlist edits refused as invalid (the previous rules stayed in force).",
            value=w.reload_errors,
        )
        yield CounterMetricFamily(
            "monitor_regex_timeouts",
            "/regex/ searches cut off by their time limit (counted as no match: a rule may be "
            "missing matches).",
            value=w.regex_timeouts,
        )
        yield GaugeMetricFamily(
            "monitor_watchlist_reload_failing",
            "1 when the watchlist file on disk is invalid and older rules are still in force.",
            value=1 if w.last_error else 0,
        )


class DatabaseCollector(Collector):
    """Gauges (and the alert counter) derived from the database at scrape time.

    A failing database does not fail the scrape: `monitor_database_up` is 0 and the
    database-derived families are left out, so the process metrics still arrive."""

    def __init__(
        self, engine: Engine, feeds: Mapping[str, dt.timedelta], channels: tuple[str, ...]
    ) -> None:
        self._engine = engine
        self._feeds = dict(feeds)
        self._channels = channels

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on the data; no registration-time queries

    def collect(self) -> Iterable[Metric]:
        started = time.monotonic()
        try:
            families = self._read()
        except StoreError as exc:
            log.warning("metrics_database_failed", error=str(exc))
            families = []
            up = 0
        else:
            up = 1
        yield GaugeMetricFamily(
            "monitor_database_up", "1 when the database answered this scrape.", value=up
        )
        yield GaugeMetricFamily(
            "monitor_database_scrape_seconds",
            "Time spent reading the database for this scrape.",
            value=time.monotonic() - started,
        )
        yield from families

    def _read(self) -> list[Metric]:
        now = utcnow()
        with db.session(self._engine) as s:
            snap = store.snapshot(s)
            changes = store.health_changes(s)
        states = dict.fromkeys(FEED_STATES, 0)
        seen = set()
        for f in snap.feeds:
            if f.id not in self._feeds:
                continue  # a feed removed from the config
            seen.add(f.id)
            state = feed_state(f.last_fetch_at, f.health)
            states[state] = states.get(state, 0) + 1
        states["never"] += len(set(self._feeds) - seen)
        feed_family = GaugeMetricFamily(
            "monitor_feeds", "Configured feeds by health state.", labels=["state"]
        )
        for state, n in states.items():
            feed_family.add_metric([state], n)
        change_family = CounterMetricFamily(
            "monitor_feed_health_changes",
            "Changes of a feed's health state, by the state entered (failing, stale, ok: "
            "recovered); each one was sent to the health_alerts channels. Every process's.",
            labels=["state"],
        )
        counted = dict.fromkeys(("ok", "failing", "stale"), 0) | dict(changes)
        for state, n in sorted(counted.items()):
            change_family.add_metric([state], n)

        counts = {(ch, st): 0 for ch in self._channels for st in DELIVERY_STATES}
        for channel, status, n in snap.deliveries:
            counts[(channel, status)] = n
        deliveries = GaugeMetricFamily(
            "monitor_deliveries",
            "Deliveries in the outbox by channel and status (pending, sent, dead).",
            labels=["channel", "status"],
        )
        depth = GaugeMetricFamily(
            "monitor_outbox_depth", "Deliveries waiting to be sent, by channel.", labels=["channel"]
        )
        for (channel, status), n in sorted(counts.items()):
            deliveries.add_metric([channel, status], n)
            if status == "pending":
                depth.add_metric([channel], n)

        age = GaugeMetricFamily(
            "monitor_outbox_oldest_pending_age_seconds",
            "Age of the oldest alert still waiting for delivery, by channel (0: none).",
            labels=["channel"],
        )
        ages = dict.fromkeys(self._channels, 0.0)
        for channel, created in snap.oldest_pending:  # UTCDateTime: aware, MIN() included
            if created is not None:
                ages[channel] = max(0.0, (now - created).total_seconds())
        for channel, seconds in sorted(ages.items()):
            age.add_metric([channel], seconds)

        alert_family = CounterMetricFamily(
            "monitor_alerts",
            "Alerts in the database by rule and severity (every process's; survives restarts).",
            labels=["rule", "severity"],
        )
        for rule, severity, n in sorted(snap.alerts):
            alert_family.add_metric([rule, severity], n)
        return [feed_family, change_family, deliveries, depth, age, alert_family]


def feed_state(last_fetch: dt.datetime | None, health: str) -> str:
    """never fetched; else the feed's health state (ok, failing, stale: health.py)."""
    return "never" if last_fetch is None else health
