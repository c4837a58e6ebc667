"""Runs the pipeline on time: the daemon (`monitor run`) and the single cycle (`monitor once`).

Builds the stages from the settings (the only module besides cli that reads them) and drives
them with an APScheduler 3 AsyncIOScheduler. Jobs coalesce and never stack (max_instances=1):
a tick that finds the previous cycle still running is logged and dropped, and nothing is lost
by it, because which feeds are due and which deliveries are pending is in the database."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import signal
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
from sqlalchemy.engine import Engine

from monitor import activation, db, delivery, gcpolicy, health, logs, pipeline, schema
from monitor.alert import Notifier
from monitor.alert.apprise import AppriseNotifier, apprise_secrets
from monitor.alert.log import LogNotifier
from monitor.alert.routes import ChannelRoute
from monitor.config import load_rules
from monitor.errors import ConfigError, StoreError
from monitor.fetch import Fetcher, FetchLimits
from monitor.metrics import Metrics, WatchlistStatus
from monitor.outcomes import CycleReport, DeliveryReport, FeedOutcome
from monitor.rules import Watchlist, regexsafe
from monitor.settings import AnyChannel, AppriseChannel, EmailChannel, Settings, WebhookChannel
from monitor.workers import WorkerPool

if TYPE_CHECKING:
    from apscheduler.events import JobExecutionEvent
    from watchfiles import Change

    from monitor import server

log = structlog.get_logger("monitor.scheduler")

MAX_TICK = 5.0  # seconds between looks for due feeds and deliveries, at most
GRACE = 8.0  # seconds running polls and sends get to finish when the daemon stops
LEASE_MARGIN = dt.timedelta(seconds=15)  # waiting for a worker, and storing


def tick_seconds(settings: Settings) -> float:
    """Look for due work every 5 s, or as often as the shortest feed interval (or adaptive
    min_interval) asks, at least once a second, so a feed polled every 2 s is not held to a
    5 s tick."""
    intervals = [settings.feed_interval(f).total_seconds() for f in settings.feeds]
    if settings.poll.adaptive and intervals:
        intervals.append(settings.poll.min_interval.total_seconds())
    return max(1.0, min([MAX_TICK, *intervals]))


def make_notifier(name: str, ch: AnyChannel) -> Notifier:
    # Webhook and email code (httpx, aiosmtplib: 28 ms a start) only for such a channel.
    if isinstance(ch, AppriseChannel):
        return AppriseNotifier(name, ch.urls, timeout=ch.timeout.total_seconds())
    if isinstance(ch, WebhookChannel):
        from monitor.alert.webhook import WebhookNotifier

        return WebhookNotifier(name, ch.url, ch.secret, timeout=ch.timeout.total_seconds())
    if isinstance(ch, EmailChannel):
        from monitor.alert.email import EmailNotifier

        smtp = ch.smtp
        return EmailNotifier(
            name,
            to=list(ch.to),
            sender=ch.from_,
            host=smtp.host,
            port=smtp.port,
            starttls=smtp.starttls,
            tls=smtp.tls,
            username=smtp.username,
            password=smtp.password,
            timeout=smtp.timeout.total_seconds(),
            validate_certs=smtp.validate_certs,
            tls_context=ssl.create_default_context(cafile=smtp.ca_file) if smtp.ca_file else None,
        )
    return LogNotifier(name)


def _timeout(ch: AnyChannel) -> float:
    if isinstance(ch, WebhookChannel | AppriseChannel):
        return ch.timeout.total_seconds()
    if isinstance(ch, EmailChannel):
        return ch.smtp.timeout.total_seconds()
    return 5.0


@dataclass
class LiveRules:
    """The watchlist in force; reloading swaps `current` in one assignment. A failed reload
    leaves `current` as it was and records why in `last_error` (for /healthz and metrics)."""

    current: Watchlist
    last_error: str | None = None
    reloads: int = 0
    reload_errors: int = 0

    def __call__(self) -> Watchlist:
        return self.current


@dataclass
class Runtime:
    """The built stages for one process, and what must be closed at the end."""

    settings: Settings
    engine: Engine
    ctx: pipeline.Context
    outbox: delivery.Outbox
    rules: LiveRules
    notifiers: list[Notifier] = field(default_factory=list)

    async def start_workers(self) -> None:
        """The parse workers (a pool of processes): after build, inside the event loop. The
        processes start in the background (from the forkserver `workers.prestart` launched)."""
        poll = self.settings.poll
        pool = WorkerPool(
            poll.workers or max(2, os.cpu_count() or 1),
            memory_mb=poll.parse_memory // 1_000_000,
            cpu_seconds=poll.parse_timeout.total_seconds(),
        )
        pool.start_soon()
        self.ctx.workers = pool

    async def aclose(self) -> None:
        if self.ctx.workers is not None:
            await self.ctx.workers.close()
        await self.ctx.fetcher.aclose()
        self.ctx.writer.close()
        for n in self.notifiers:
            await n.aclose()
        self.engine.dispose()


def build(settings: Settings, rules: Watchlist, *, activate: bool = True) -> Runtime:
    """The stages for one process, the database upgraded and the feeds synced; the rules
    activated unless `activate` is False (the daemon does it once its observers listen)."""
    apprise_urls = [
        u for ch in settings.channels.values() if isinstance(ch, AppriseChannel) for u in ch.urls
    ]
    logs.redact(settings.secrets() | set(apprise_secrets(apprise_urls)))  # before any logging
    engine = db.make_engine(settings.database)
    schema.upgrade(engine)
    poll = settings.poll
    fetcher = Fetcher(
        FetchLimits(
            timeout=poll.timeout.total_seconds(),
            max_bytes=poll.max_bytes,
            max_redirects=poll.max_redirects,
            concurrency=poll.concurrency,
            per_host=poll.per_host,
            allow_private_networks=poll.allow_private_networks,
            user_agent=poll.user_agent,
        )
    )
    notifiers: list[Notifier] = []
    routes: dict[str, ChannelRoute] = {}
    for name, ch in settings.effective_channels.items():
        n = make_notifier(name, ch)
        notifiers.append(n)
        routes[name] = ChannelRoute(
            n,
            ch.min_severity,
            _timeout(ch),
            digest=ch.digest,
            burst=ch.burst,
            rate_limit=ch.rate_limit,
        )
    feeds = {
        f.id: pipeline.FeedJob(
            id=f.id,
            url=f.url,
            interval=settings.feed_interval(f),
            pinned=f.interval is not None,
            tags=f.tags,
            backfill=f.backfill,
            full_text=f.full_text,
            pages_dir=f.pages_dir,
        )
        for f in settings.feeds
    }
    live = LiveRules(rules)
    worker = worker_id()
    ctx = pipeline.Context(
        engine=engine,
        fetcher=fetcher,
        feeds=feeds,
        watchlist=live,
        channels=routes,
        worker=worker,
        feed_lease=feed_lease(settings),
        retention=settings.retention,
        story_window=settings.stories.window,
        health=pipeline.Health(health_policy(settings), settings.health_alerts),
    )
    pipeline.sync(ctx)
    if activate:
        activation.activate(ctx, rules)
    outbox = delivery.Outbox(engine, routes, worker=worker)
    gcpolicy.settle()  # what start-up made lives as long as the process: not collected again
    return Runtime(settings, engine, ctx, outbox, live, notifiers)


def health_policy(settings: Settings) -> health.Policy:
    poll = settings.poll
    return health.Policy(
        failing_after=poll.failing_after,
        stale_after=float(poll.stale_after),
        adaptive=poll.adaptive,
        min_interval=poll.min_interval,
        max_interval=poll.max_interval,
        jitter=poll.jitter,
    )


def worker_id() -> str:
    """This process among the workers sharing a database: host, pid and a random part (a
    restarted container may get the same pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


def feed_lease(settings: Settings) -> dt.timedelta:
    """How long a claimed feed is this worker's: its whole-request deadline, and time to
    parse (its CPU deadline) and store what came back. A killed worker's feeds are due
    again this soon. With full text, the pages of its new items too: their budget is one
    more deadline, and their extraction another CPU deadline."""
    lease = settings.poll.timeout + settings.poll.parse_timeout + LEASE_MARGIN
    if any(f.full_text for f in settings.feeds):
        lease += settings.poll.timeout + settings.poll.parse_timeout
    return lease


async def run_once(
    settings: Settings,
    rules: Watchlist,
    *,
    everything: bool = False,
    on_feed: Callable[[FeedOutcome], None] | None = None,
) -> tuple[CycleReport, DeliveryReport]:
    """One cycle over every due feed (or every feed), then every due delivery, then exit."""
    runtime = build(settings, rules)
    try:
        await runtime.start_workers()
        report = await pipeline.poll(runtime.ctx, everything=everything, on_done=on_feed)
        delivered = await delivery.deliver(runtime.outbox)
        return report, delivered
    finally:
        await runtime.aclose()


class Stop(asyncio.Event):
    """Set to stop the daemon; `reason` says why (the signal's name), for the log."""

    reason = "requested"

    def stop(self, reason: str) -> None:
        self.reason = reason
        self.set()


async def run_daemon(settings: Settings, rules: Watchlist, stop: asyncio.Event) -> None:
    """Poll and deliver until `stop` is set; then let running work finish (up to GRACE s),
    hand back what is cut off, and close everything."""
    # The daemon's own parts (APScheduler, the HTTP endpoint, the file watcher) are imported
    # here: `once` and every other command never use them (a tenth of a second each start).
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from monitor import server

    runtime = build(settings, rules, activate=False)
    await runtime.start_workers()
    scheduler = AsyncIOScheduler(timezone=dt.UTC)
    running: set[asyncio.Task[None]] = set()
    logging.getLogger("apscheduler.scheduler").addFilter(_no_overrun_text)

    def job(fn: Callable[[], object], name: str) -> Callable[[], object]:
        async def wrapped() -> None:
            task = asyncio.current_task()
            assert task is not None
            running.add(task)
            try:
                await fn()  # type: ignore[misc]
            except asyncio.CancelledError:
                # Cut off at the end of the stop's grace period: said once, at info (the
                # claims were handed back); not a failure for APScheduler to log as one.
                log.info("job_cut_off", job=name)
            except Exception:
                log.exception("job_failed", job=name)
            finally:
                running.discard(task)

        return wrapped

    common = dict(coalesce=True, max_instances=1, misfire_grace_time=None)
    tick = tick_seconds(settings)
    now = dt.datetime.now(dt.UTC)

    def wake_delivery(outcome: FeedOutcome) -> None:
        # A feed's alerts go out now, not at the next tick nor at the end of a long cycle.
        if outcome.alerts and scheduler.running:
            scheduler.modify_job("deliver", next_run_time=dt.datetime.now(dt.UTC))

    async def poll_then_wake_delivery() -> None:
        await pipeline.poll(runtime.ctx, on_done=wake_delivery)

    scheduler.add_job(
        job(poll_then_wake_delivery, "poll"),
        "interval",
        seconds=tick,
        id="poll",
        next_run_time=now,
        **common,
    )
    scheduler.add_job(
        job(lambda: delivery.deliver(runtime.outbox, wait=False), "deliver"),
        "interval",
        seconds=tick,
        id="deliver",
        next_run_time=now,
        **common,
    )
    scheduler.add_job(
        job(lambda: asyncio.to_thread(pipeline.purge, runtime.ctx), "purge"),
        "interval",
        hours=6,
        id="purge",
        next_run_time=now,
        **common,
    )
    metrics = Metrics(
        runtime.engine,
        feeds={f.id: f.interval for f in runtime.ctx.feeds.values()},
        channels=runtime.outbox.channels,
        watchlist=lambda: watchlist_status(runtime.rules),
        running=lambda: bool(scheduler.running),
        worker=runtime.ctx.worker,
    )
    runtime.ctx.on_feed.append(metrics.observe_feed)
    runtime.ctx.on_alerts.append(metrics.observe_alerts)
    runtime.outbox.on_delivery.append(metrics.observe_delivery)
    await asyncio.to_thread(activation.activate, runtime.ctx, rules)
    scheduler.add_listener(_on_event, EVENT_JOB_MAX_INSTANCES)
    scheduler.start()
    watcher = asyncio.create_task(watch_rules(runtime, stop))
    log.info(
        "started",
        feeds=len(runtime.ctx.feeds),
        rules=len(rules.rules),
        watchlist=rules.version,
        channels=list(runtime.outbox.channels),
        database=db.redact_url(settings.database),
        worker=runtime.ctx.worker,
    )
    http: server.Server | None = None
    try:
        host, port = settings.server.host_port
        http = await server.serve(
            runtime.engine,
            metrics,
            host,
            port,
            watchlist=lambda: watchlist_status(runtime.rules),
            running=lambda: bool(scheduler.running),
        )
        await stop.wait()
    finally:
        # Claim nothing more and start no new job, but let what runs finish: polls already
        # fetching, sends already sent. Whatever is still running after GRACE seconds is
        # cancelled and hands its claims back (due again at once, for any worker).
        runtime.ctx.stopping.set()
        if scheduler.running:
            scheduler.pause()
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        inflight = running | runtime.outbox.inflight
        reason = stop.reason if isinstance(stop, Stop) else "requested"
        log.info("stopping", signal=reason, running=len(inflight))
        if inflight:
            _done, pending = await asyncio.wait(inflight, timeout=GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                log.info("cut_off", tasks=len(pending), grace_seconds=GRACE)
        scheduler.shutdown(wait=False)
        if http is not None:
            await http.stop()
        await runtime.aclose()
        log.info("stopped")


async def watch_rules(runtime: Runtime, stop: asyncio.Event) -> None:
    """Reload the watchlist when one of its files changes (editors that write a new file and
    rename it over the old one included: we watch the folders and filter by name)."""
    paths = {Path(p).absolute() for p in runtime.settings.watchlist}
    folders = sorted({str(p.parent) for p in paths})

    from watchfiles import awatch

    def ours(_change: Change, path: str) -> bool:
        return Path(path).absolute() in paths

    async for _changes in awatch(
        *folders, watch_filter=ours, stop_event=stop, debounce=300, step=50, recursive=False
    ):
        try:
            await reload_rules(runtime)
        except Exception:  # the watcher must outlive any one failed reload
            log.exception("watchlist_reload_crashed", keeping=runtime.rules.current.version)


async def reload_rules(runtime: Runtime) -> bool:
    """Swap in the edited watchlist if it is valid; otherwise keep the rules in force and
    say why (log, /healthz, metric). Returns whether a new version went live."""
    live = runtime.rules
    try:
        fresh = await asyncio.to_thread(load_rules, runtime.settings)
    except ConfigError as exc:
        live.last_error = "\n".join(exc.problems)
        live.reload_errors += 1
        log.error("watchlist_invalid", problems=exc.problems, keeping=live.current.version)
        return False
    live.last_error = None
    if fresh.version == live.current.version:
        return False
    try:
        activated = await asyncio.to_thread(activation.activate, runtime.ctx, fresh)
    except StoreError as exc:
        # Recording when the new rules became active failed (the database): keep the rules
        # in force, say so, and try again at the next change of the file.
        live.last_error = f"activating the new rules failed: {exc}"
        live.reload_errors += 1
        log.error("watchlist_reload_failed", error=str(exc), keeping=live.current.version)
        return False
    previous, live.current = live.current.version, fresh
    live.reloads += 1
    for warning in fresh.warnings:  # likely mistakes: in force, but said (FILE:LINE:COL)
        log.warning("watchlist_warning", warning=warning)
    log.info(
        "watchlist_reloaded",
        version=fresh.version,
        previous=previous,
        rules=len(fresh.rules),
        activated=activated,
    )
    return True


def watchlist_status(live: LiveRules) -> WatchlistStatus:
    """The rules in force and the reload record, for /healthz and /metrics."""
    w = live.current
    return WatchlistStatus(
        w.version,
        len(w.rules),
        live.reloads,
        live.reload_errors,
        live.last_error,
        regexsafe.timeouts(),
    )


def _on_event(event: JobExecutionEvent) -> None:
    from apscheduler.events import EVENT_JOB_MAX_INSTANCES

    if event.code == EVENT_JOB_MAX_INSTANCES:
        # Not silent: the previous cycle is still busy; the due feeds stay due in the
        # database and the next free tick takes them.
        log.warning("cycle_overrun", job=event.job_id)


def _no_overrun_text(record: logging.LogRecord) -> bool:
    """APScheduler's own "maximum number of running instances reached" warning: dropped, as
    _on_event logs the overrun once, as our `cycle_overrun` event."""
    return "maximum number of running instances" not in record.getMessage()


@contextlib.contextmanager
def stop_on_signals(stop: Stop) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.stop, sig.name)
    try:
        yield
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
