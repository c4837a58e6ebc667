"""The orchestrator of polling: fetch -> parse -> (full text: the new items' pages) -> store
-> match -> alerts. Items in, alerts out; delivering them is delivery.py's job, rules
becoming active is activation.py's.

The stages do not know each other; this module calls them in order and turns their typed
errors into per-feed state (a feed's failure is data on its row, never an exception that
stops the cycle). An item and the alerts it caused are committed in one transaction.
Network I/O never happens inside a database transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from monitor import db, fulltext, store
from monitor.alert.routes import ChannelRoute
from monitor.errors import FetchError, ParseError, StoreError
from monitor.fetch import Fetcher, FetchResult
from monitor.models import ItemData, utcnow
from monitor.outcomes import CycleReport, FeedOutcome
from monitor.records import ParsedAndMatched
from monitor.rules import Watchlist
from monitor.storing import BATCH, FeedJob, Fetched, Health, Rules, Writer, record_failure
from monitor.units import format_duration
from monitor.workers import ByName, Shared, WorkerFailed, WorkerPool

log = structlog.get_logger("monitor.pipeline")
# The parse code is the workers' to import (workers.ByName): this process never loads it (the
# replies are records.py's types, the story step's sketches sketch.py's).
_PARSE_AND_MATCH = ByName("monitor.jobs", "parse_and_match")


@dataclass
class Context:
    """What polling needs: the database, the fetcher, the feeds, the rules in force and the
    channels (to route the alerts it writes)."""

    engine: Engine
    fetcher: Fetcher
    feeds: Mapping[str, FeedJob]
    watchlist: Callable[[], Watchlist]
    channels: Mapping[str, ChannelRoute]
    worker: str = "worker"  # this process, as claims name it (scheduler.worker_id)
    # How long a claimed feed is ours: one fetch and parse, and some; a killed worker's
    # feeds are due again this soon.
    feed_lease: dt.timedelta = dt.timedelta(seconds=90)
    retention: dt.timedelta = dt.timedelta(days=180)
    story_window: dt.timedelta = dt.timedelta(days=3)  # stories.window (folding.py)
    # rule id -> when the rule, as now written, became active (activation.activate sets it).
    active_since: dict[str, dt.datetime] = field(default_factory=dict)
    # Observers (metrics, tests): called with every feed outcome.
    on_feed: list[Callable[[FeedOutcome], None]] = field(default_factory=list)
    # Called with the number of alerts each backfill created (activation.activate).
    on_alerts: list[Callable[[int], None]] = field(default_factory=list)
    # Worker processes that parse (None: a thread of this process; tests, tools).
    workers: WorkerPool | None = None
    # Set when the daemon stops: the cycle claims nothing more and lets running polls finish.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    # Feed health: its settings and the channels told of each change (`health_alerts`).
    health: Health = field(default_factory=Health)
    # The time (tests inject one to drive cadence, staleness and backoff without sleeping).
    clock: Callable[[], dt.datetime] = utcnow
    # Full text: articles read, by canonical URL (a story linked from several feeds is
    # fetched once).
    pages: fulltext.PageCache = field(default_factory=fulltext.PageCache)
    # The one thread that writes polling's results (storing.Writer).
    writer: Writer = field(init=False)

    def __post_init__(self) -> None:
        self.writer = Writer(
            self.engine,
            Rules(
                self.watchlist,
                lambda: self.active_since,
                self.channels,
                self.story_window,
                self.health,
            ),
        )


# --- polling -------------------------------------------------------------------------------


def sync(ctx: Context) -> None:
    """Make the database know every configured feed."""
    with db.session(ctx.engine) as s:
        store.sync_feeds(s, [(f.id, f.url) for f in ctx.feeds.values()], ctx.clock())
        s.commit()


async def poll(
    ctx: Context,
    *,
    everything: bool = False,
    on_done: Callable[[FeedOutcome], None] | None = None,
) -> CycleReport:
    """One cycle: every due feed (or every feed), polled concurrently within the fetcher's
    limits. Returns what happened to each feed.

    Feeds are claimed in batches, only as many as the fetcher can start at once and only for
    hosts with a free slot, so that a claimed feed is fetched at once and its lease (a little
    more than one fetch and parse) never runs out while it waits; at most IN_FLIGHT polls a
    fetch slot are under way. Whenever a poll finishes, its place goes to the next due feed.
    """
    report = CycleReport()
    polled: set[str] = set()  # this cycle's feeds: never claimed twice in one cycle
    running: set[asyncio.Task[FeedOutcome]] = set()
    try:
        return await _cycle(ctx, report, polled, running, everything, on_done)
    except asyncio.CancelledError:
        # Cut off: the polls under way are cancelled too (each hands its feed back).
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise


async def _cycle(
    ctx: Context,
    report: CycleReport,
    polled: set[str],
    running: set[asyncio.Task[FeedOutcome]],
    everything: bool,
    on_done: Callable[[FeedOutcome], None] | None,
) -> CycleReport:
    concurrency = ctx.fetcher.limits.concurrency
    # Claim in batches of a quarter of the fetch slots or more, not one feed per finished poll.
    worth_it = max(1, min(CLAIM_BATCH, concurrency // 4))
    finished = _Finished()
    while True:
        # Cleared before the places are counted: a feed handed over from here on wakes the
        # wait below, even one handed over while the claim waits for the writer.
        ctx.writer.handed.clear()
        held = min(ctx.writer.holding, HELD)  # past fetch and parse: their places are free
        room = IN_FLIGHT * concurrency - len(running) + held
        if ctx.stopping.is_set():
            room = 0  # the daemon is stopping: finish what runs, claim nothing more
            if not running:
                return report
        if room >= worth_it or not running:
            want = min(room, CLAIM_BATCH)
            claims = await ctx.writer.call(_claim, ctx, want, polled, everything)
            for claim in claims:
                polled.add(claim.id)
                if claim.id in ctx.feeds:  # else configured in another worker's file only
                    task = asyncio.create_task(poll_feed(ctx, ctx.feeds[claim.id], claim))
                    task.add_done_callback(finished.add)
                    running.add(task)
            if not running:
                return report
            if len(claims) == want and room - want >= worth_it:
                continue  # a full batch: there may be more due
        done = await finished.next(ctx.writer.handed)
        running.difference_update(done)  # in place: poll() cancels what is left if cut off
        for task in done:
            outcome = task.result()
            report.feeds.append(outcome)
            if on_done:
                on_done(outcome)


class _Finished:
    """The polls that finished since the cycle last looked, in the order they finished.

    Each poll's task reports here when done, so that waiting for the next one costs the same
    however many polls are under way (up to 300): asyncio.wait over all of them added and
    removed a callback on every one at each wake-up, 640 times in a 2,000-feed cycle."""

    def __init__(self) -> None:
        self._done: list[asyncio.Task[FeedOutcome]] = []
        self._any = asyncio.Event()

    def add(self, task: asyncio.Task[FeedOutcome]) -> None:
        self._done.append(task)
        self._any.set()

    async def next(self, handed: asyncio.Event) -> list[asyncio.Task[FeedOutcome]]:
        """The polls finished, once one has, or once one has handed its feed to the writer
        (`handed`: its place is free, claim again); then none, maybe."""
        if not self._done and not handed.is_set():
            waits = [asyncio.ensure_future(e.wait()) for e in (self._any, handed)]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
        done, self._done = self._done, []
        self._any.clear()
        return done


CLAIM_BATCH = 100  # feeds claimed in one transaction, at most
# Polls under way, per fetch slot. A poll keeps its place until its feed is stored, and the
# writer takes feeds in batches: with one poll a slot, the slots filled with polls waiting
# for a batch, no fetch started meanwhile, and the parse workers starved (idle 2.3-3.1 s
# each in a 2,000-feed cycle 1; 0.6-0.9 s with two a slot; docs/design.md). The fetches
# themselves stay within the slots: a feed is claimed only when its fetch can start at once
# (Fetcher.admission), and the extra polls are past their fetch.
IN_FLIGHT = 2
# Polls whose feeds wait for the writer (queued, or in the batch being written) give their
# places to new polls, up to this many, so that the writer's batches (up to storing.BATCH)
# do not take the places the fetches and parses need: counted against them, batches of 100
# kept 1.42-1.53 cores busy instead of 1.71-1.76 (docs/design.md). The results held for the
# writer stay bounded.
HELD = 2 * BATCH


def _claim(ctx: Context, limit: int, polled: set[str], everything: bool) -> list[store.FeedClaim]:
    with db.session(ctx.engine) as s:
        return store.claim_feeds(
            s,
            ctx.clock(),
            worker=ctx.worker,
            lease=ctx.feed_lease,
            limit=limit,
            room=ctx.fetcher.admission(),
            skip=polled,
            force=everything,
        )


async def poll_feed(ctx: Context, feed: FeedJob, claim: store.FeedClaim) -> FeedOutcome:
    """Fetch, parse, store and match one claimed feed; tell the observers."""
    with ctx.writer.expecting():
        outcome = await _poll_feed(ctx, feed, claim)
    outcome.took_over = claim.took_over
    for observe in ctx.on_feed:
        observe(outcome)
    return outcome


async def _poll_feed(ctx: Context, feed: FeedJob, claim: store.FeedClaim) -> FeedOutcome:
    # The next due time counts from the claim, which the fetch follows at once.
    now = ctx.clock()
    started = time.monotonic()
    status: int | None = None  # the HTTP status, once there is one (a 200 that fails to parse)
    try:
        result = await ctx.fetcher.fetch(
            claim.url, etag=claim.etag, last_modified=claim.last_modified
        )
        status = result.status
        done = None
        body_hash = None
        if not result.not_modified:
            body_hash = hashlib.sha256(result.body or b"").hexdigest()
            # A server that ignores conditional requests sends the same bytes again: nothing
            # in them can be new, so they are not parsed again.
            if body_hash != claim.body_hash:
                done = await _parse(ctx, feed, result, now)
        pages: dict[str, int] = {}
        if done is not None and feed.full_text:
            try:
                done, pages = await _full_text(ctx, feed, claim, done)
            except Exception as exc:  # a bug, or the database: the items go on as the feed gave
                log.exception("pages_crashed", feed=feed.id, error=str(exc))
                pages = {"error": len(done.parsed.items)}
        if result.moved_to and result.moved_to != claim.url:
            log.warning(
                "feed_moved",
                feed=feed.id,
                to=result.moved_to,
                hint="the feed answered with a permanent redirect; update its url in "
                "monitor.yaml (monitor fetches the new address meanwhile)",
            )
        outcome = await ctx.writer.store(
            Fetched(
                feed, result, done.parsed if done else None, now, body_hash,
                hits=done.hits if done else None, hits_by=done.watchlist if done else None,
                sketches=done.sketches if done else None,
            )
        )  # fmt: skip
        outcome.pages = pages
    except (FetchError, ParseError) as exc:
        return await _poll_failed(ctx, feed, now, started, exc, status)
    except asyncio.CancelledError:
        # Cut off (the daemon stopping past its grace period): hand the feed back at once
        # rather than leave it leased.
        await asyncio.shield(ctx.writer.call(_release, ctx, feed))
        raise
    except Exception as exc:
        # A bug, or a library's surprise: this feed's failure, recorded on its row like any
        # other (kind and message), never the cycle's; the traceback goes to the log.
        log.exception("feed_crashed", feed=feed.id)
        return await _poll_failed(ctx, feed, now, started, exc, status)
    outcome.elapsed = result.elapsed
    _log_health(feed, outcome.health)
    if outcome.new or outcome.changed or outcome.alerts:
        log.info(
            "feed_polled",
            feed=feed.id,
            status=outcome.status,
            items=outcome.items,
            new=outcome.new,
            changed=outcome.changed,
            alerts=outcome.alerts,
        )
    return outcome


async def _parse(
    ctx: Context, feed: FeedJob, result: FetchResult, now: dt.datetime
) -> ParsedAndMatched:
    """Parse and match in a worker process (CPU deadline, memory limit; both cores); in a
    thread when the context has no workers (tests, one-off tools)."""
    body = result.body or b""
    run, arg = _runner(ctx, ctx.watchlist())
    try:
        done: ParsedAndMatched = await run(
            _PARSE_AND_MATCH, body, feed_id=feed.id, base_url=result.url, fetched_at=now,
            feed_tags=feed.tags, watchlist=arg,
        )  # fmt: skip
    except WorkerFailed as exc:
        raise ParseError(f"the parse {exc.reason}; its worker was replaced") from None
    return done


def _runner(ctx: Context, watchlist: Watchlist) -> tuple[fulltext.Runner, Any]:
    """How a job runs: in a worker process, the watchlist sent once per version
    (workers.Shared); in a thread when the context has no workers (tests, one-off tools)."""
    if ctx.workers is not None:
        return ctx.workers.run, Shared("watchlist", watchlist.version, watchlist)

    async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(partial(fn, *args, **kwargs))

    return in_thread, watchlist


async def _full_text(
    ctx: Context, feed: FeedJob, claim: store.FeedClaim, done: ParsedAndMatched
) -> tuple[ParsedAndMatched, dict[str, int]]:
    """The pages of the feed's new and changed items (fulltext.read_pages; never an unchanged
    one's) made their content, and those items matched again; items whose page failed keep
    the feed's text and its hits. Nothing is fetched for a feed that wants no pages now
    (`auto` and not teasers) or whose first poll only records what is there (no backfill)."""
    items = done.parsed.items
    # A first poll that only records what is there will not alert: no page is worth it.
    if not (feed.backfill or claim.initialized) or not fulltext.wanted(feed.full_text, items):
        return done, {}
    new, changed = await ctx.writer.call(_unseen, ctx, feed, items)
    if not new and not changed:
        return done, {}
    run, arg = _runner(ctx, ctx.watchlist())
    read = await fulltext.read_pages(
        fulltext.Pages(ctx.fetcher, run, ctx.pages),
        [it for it in items if it.guid in new or it.guid in changed],
        feed_tags=feed.tags, watchlist=arg, budget=ctx.fetcher.limits.timeout,
        pages_dir=feed.pages_dir, feed_id=feed.id, fresh=changed,
    )  # fmt: skip
    hits = {g: h for g, h in done.hits.items() if g not in read.hits}
    hits.update((g, h) for g, h in read.hits.items() if h)
    version = done.watchlist if read.watchlist in (None, done.watchlist) else ""  # "": rematch
    parsed = replace(done.parsed, items=[read.items.get(it.guid, it) for it in items])
    # The story step's sketches: of the page's text for the items read with their page.
    sketches = {g: s for g, s in done.sketches.items() if g not in read.hits}
    sketches.update(read.sketches)
    return ParsedAndMatched(parsed, hits, version, sketches), read.results


def _unseen(ctx: Context, feed: FeedJob, items: list[ItemData]) -> tuple[set[str], set[str]]:
    """The feed's new and changed guids."""
    with db.session(ctx.engine) as s:
        return store.unseen_or_changed(s, feed.id, items)


async def _poll_failed(
    ctx: Context,
    feed: FeedJob,
    now: dt.datetime,
    started: float,
    exc: Exception,
    status: int | None,
) -> FeedOutcome:
    """A failed poll is data on the feed row, never an exception out of the cycle. `status`:
    the HTTP status when the fetch got one (a 200 whose body is not a feed)."""
    status = getattr(exc, "status", None) or status
    retry_after = getattr(exc, "retry_after", None)
    kind = type(exc).__name__
    error = str(exc) or kind
    change = None
    try:
        change = await ctx.writer.call(
            record_failure, ctx.engine, ctx.health, feed, now, status, error, kind, retry_after
        )
    except StoreError as store_exc:  # the database too: the lease runs out, the feed is due
        log.error("feed_not_recorded", feed=feed.id, error=str(store_exc))
    log.warning("feed_failed", feed=feed.id, status=status, kind=kind, error=error)
    _log_health(feed, change)
    return FeedOutcome(
        feed.id,
        ok=False,
        status=status,
        error=error,
        error_kind=kind,
        elapsed=time.monotonic() - started,
        health=change,
    )


def _log_health(feed: FeedJob, change: tuple[str, str] | None) -> None:
    if change is not None:
        previous, state = change
        emit = log.info if state == "ok" else log.warning
        emit("feed_health", feed=feed.id, state=state, previous=previous)


def _release(ctx: Context, feed: FeedJob) -> None:
    try:
        with db.session(ctx.engine) as s:
            store.release_feed(s, feed.id, worker=ctx.worker, now=ctx.clock())
            s.commit()
    except StoreError as exc:
        log.error("feed_not_released", feed=feed.id, error=str(exc))


def purge(ctx: Context) -> int:
    """Retention, a batch per transaction so that polling is never held up for long (on
    SQLite it shares the one write lock): old items go, leaving tombstones (store.purge_batch).
    Blocking: the scheduler runs it in a thread."""
    now = utcnow()
    total = 0
    while True:
        with db.session(ctx.engine) as s:
            n = store.purge_batch(s, now - ctx.retention, now)
            s.commit()
        total += n
        if n == 0:
            break
    if total:
        log.info("purged", items=total, older_than=format_duration(ctx.retention))
    with db.session(ctx.engine) as s:  # the story window's index: what is older is no copy
        store.purge_stories(s, now - ctx.story_window)
        s.commit()
    return total
