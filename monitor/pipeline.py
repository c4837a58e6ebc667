"""The orchestrator: fetch -> parse -> store -> match -> alerts, and the delivery of alerts.

The stages do not know each other; this module calls them in order and turns their typed
errors into per-feed state (a feed's failure is data on its row, never an exception that
stops the cycle). An item and the alerts it caused are committed in one transaction.
Network I/O never happens inside a database transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor import db, store
from monitor.alert import Notifier
from monitor.errors import DeliveryError, FetchError, ParseError, StoreError
from monitor.fetch import Fetcher, FetchResult
from monitor.models import Alert, AlertMessage, Delivery, Hit, Item, ItemData, utcnow
from monitor.parse import ParsedFeed, parse_feed
from monitor.rules import Rule, Watchlist

log = structlog.get_logger("monitor.pipeline")

SEVERITY_RANK = {"info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}


@dataclass(frozen=True, slots=True)
class FeedJob:
    id: str
    url: str
    interval: dt.timedelta
    jitter: dt.timedelta = dt.timedelta(0)
    tags: tuple[str, ...] = ()
    backfill: bool = False


@dataclass(frozen=True, slots=True)
class ChannelRoute:
    notifier: Notifier
    min_severity: str = "info"
    timeout: float = 30.0
    digest: dt.timedelta | None = None  # hold alerts and send one digest per window
    burst: int = 10  # more than this many due at once: one digest instead
    rate_limit: int | None = None  # messages per hour at most

    @property
    def lease(self) -> dt.timedelta:
        """How long a claimed send is ours: past its timeout, so never taken twice while in
        flight, and short, so a crashed process's sends are soon taken up again."""
        return dt.timedelta(seconds=self.timeout + 10)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: 30 s, 1 m, 2 m ... capped at 4 h, about 24 h in all."""

    base: float = 30.0
    cap: float = 4 * 3600.0
    max_attempts: int = 14
    lease: dt.timedelta = dt.timedelta(minutes=5)

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds until the next attempt: what the peer asked (Retry-After, RFC 9110
        10.2.3), kept within 1 s and 24 h; else the backoff with jitter."""
        if retry_after is not None:
            return min(max(retry_after, 1.0), 24 * 3600.0)
        backoff = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        return backoff * random.uniform(0.75, 1.0)  # spread retries of many deliveries apart


@dataclass
class Context:
    engine: Engine
    fetcher: Fetcher
    feeds: Mapping[str, FeedJob]
    watchlist: Callable[[], Watchlist]
    channels: Mapping[str, ChannelRoute]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    feed_lease: dt.timedelta = dt.timedelta(minutes=5)
    retention: dt.timedelta = dt.timedelta(days=180)
    # rule id -> when the rule, as now written, became active (see activate()).
    active_since: dict[str, dt.datetime] = field(default_factory=dict)
    # Observers (metrics, tests): called with every feed outcome and delivery outcome.
    on_feed: list[Callable[[FeedOutcome], None]] = field(default_factory=list)
    on_delivery: list[Callable[[DeliveryOutcome], None]] = field(default_factory=list)
    inflight: set[asyncio.Task[None]] = field(default_factory=set)  # sends not awaited


@dataclass
class FeedOutcome:
    feed_id: str
    ok: bool
    status: int | None = None
    items: int = 0
    new: int = 0
    alerts: int = 0
    error: str | None = None
    error_kind: str | None = None  # the FetchError/ParseError class name
    elapsed: float = 0.0  # seconds spent fetching


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    channel: str
    alert_id: str
    rule_id: str
    severity: str
    result: str  # sent | retry | dead
    attempt: int
    next_attempt: dt.datetime | None = None  # when a retry is due


@dataclass
class CycleReport:
    feeds: list[FeedOutcome] = field(default_factory=list)

    @property
    def alerts(self) -> int:
        return sum(f.alerts for f in self.feeds)


# --- polling -------------------------------------------------------------------------------


def sync(ctx: Context) -> None:
    """Make the database know every configured feed."""
    with db.session(ctx.engine) as s:
        store.sync_feeds(s, [(f.id, f.url) for f in ctx.feeds.values()], utcnow())
        s.commit()


async def poll(
    ctx: Context,
    *,
    everything: bool = False,
    on_done: Callable[[FeedOutcome], None] | None = None,
) -> CycleReport:
    """One cycle: every due feed (or every feed), polled concurrently within the fetcher's
    limits. Returns what happened to each feed."""
    now = utcnow()
    ids = list(ctx.feeds)
    if not everything:
        ids = await asyncio.to_thread(_due, ctx, ids, now)
    report = CycleReport()

    async def one(feed_id: str) -> None:
        outcome = await poll_feed(ctx, ctx.feeds[feed_id], force=everything)
        if outcome is not None:
            report.feeds.append(outcome)
            if on_done:
                on_done(outcome)

    await asyncio.gather(*(one(i) for i in ids))
    return report


def _due(ctx: Context, ids: Sequence[str], now: dt.datetime) -> list[str]:
    with db.session(ctx.engine) as s:
        return store.due_feeds(s, ids, now)


async def poll_feed(ctx: Context, feed: FeedJob, *, force: bool = False) -> FeedOutcome | None:
    """Fetch, parse, store and match one feed. None when another process holds it."""
    outcome = await _poll_feed(ctx, feed, force)
    if outcome is not None:
        for observe in ctx.on_feed:
            observe(outcome)
    return outcome


async def _poll_feed(ctx: Context, feed: FeedJob, force: bool) -> FeedOutcome | None:
    # Claim only once a fetch slot is ours: a feed queued behind slow fetches to its host is
    # not leased meanwhile (its lease could run out and another process fetch it too).
    try:
        async with ctx.fetcher.slot(feed.url):
            claimed, etag, last_modified = await asyncio.to_thread(
                _claim, ctx, feed, utcnow(), force
            )
            if not claimed:
                return None
            # The next due time counts from here, not from before a claim that had to wait.
            now = utcnow()
            started = time.monotonic()
            result = await ctx.fetcher.fetch(
                feed.url, etag=etag, last_modified=last_modified, in_slot=True
            )
    except FetchError as exc:
        return await _fetch_failed(ctx, feed, now, started, exc)
    try:
        parsed = None
        if not result.not_modified:
            parsed = await asyncio.to_thread(
                parse_feed,
                result.body or b"",
                feed_id=feed.id,
                base_url=result.url,
                fetched_at=now,
            )
    except ParseError as exc:
        return await _fetch_failed(ctx, feed, now, started, exc)
    outcome = await asyncio.to_thread(_process, ctx, feed, result, parsed, now)
    outcome.elapsed = result.elapsed
    if outcome.new or outcome.alerts:
        log.info(
            "feed_polled",
            feed=feed.id,
            status=outcome.status,
            items=outcome.items,
            new=outcome.new,
            alerts=outcome.alerts,
        )
    return outcome


async def _fetch_failed(
    ctx: Context, feed: FeedJob, now: dt.datetime, started: float, exc: FetchError | ParseError
) -> FeedOutcome:
    """A failed fetch or parse is data on the feed row, never an exception out of the cycle."""
    status = getattr(exc, "status", None)
    retry_after = getattr(exc, "retry_after", None)
    await asyncio.to_thread(_failed, ctx, feed, now, status, str(exc), retry_after)
    log.warning("feed_failed", feed=feed.id, status=status, error=str(exc))
    return FeedOutcome(
        feed.id,
        ok=False,
        status=status,
        error=str(exc),
        error_kind=type(exc).__name__,
        elapsed=time.monotonic() - started,
    )


def _claim(
    ctx: Context, feed: FeedJob, now: dt.datetime, force: bool
) -> tuple[bool, str | None, str | None]:
    with db.session(ctx.engine) as s:
        if force:
            row = store.get_feed(s, feed.id)
        elif store.claim_feed(s, feed.id, now, ctx.feed_lease):
            s.commit()
            row = store.get_feed(s, feed.id)
        else:
            return False, None, None
        return True, row.etag, row.last_modified


def _next_due(feed: FeedJob, now: dt.datetime, at_least: float | None = None) -> dt.datetime:
    delay = feed.interval.total_seconds() + random.uniform(0, feed.jitter.total_seconds())
    return now + dt.timedelta(seconds=max(delay, at_least or 0.0))


def _failed(
    ctx: Context,
    feed: FeedJob,
    now: dt.datetime,
    status: int | None,
    error: str,
    retry_after: float | None,
) -> None:
    with db.session(ctx.engine) as s:
        row = store.get_feed(s, feed.id)
        # A broken feed is asked less often: 1, 2, 4 … up to 16 intervals (at most a day),
        # or what its server asked for with Retry-After, whichever is longer.
        factor = min(2**row.consecutive_errors, 16)
        backoff = min(feed.interval.total_seconds() * factor, 86400.0)
        nxt = _next_due(feed, now, max(backoff, retry_after or 0.0))
        store.record_failure(s, row, now=now, status=status, error=error, next_due=nxt)
        s.commit()


def _process(
    ctx: Context,
    feed: FeedJob,
    result: FetchResult,
    parsed: ParsedFeed | None,
    now: dt.datetime,
) -> FeedOutcome:
    """Store the items and write the alerts they cause, in one transaction."""
    watchlist = ctx.watchlist()
    with db.session(ctx.engine) as s:
        row = store.get_feed(s, feed.id)
        alert_ids: list[str] = []
        stored: list[store.StoredItem] = []
        if parsed is not None:
            stored = store.upsert_items(s, feed.id, parsed.items, now)
            # A new feed's existing items are only recorded (no flood on the first poll)
            # unless the feed asks for backfill.
            if row.initialized or feed.backfill:
                alerts = _cool_down(s, watchlist, _match(ctx, watchlist, feed, stored), now)
                alert_ids = store.add_alerts(s, alerts, now, _holds(ctx))
        store.record_success(
            s,
            row,
            now=now,
            status=result.status,
            etag=result.etag,
            last_modified=result.last_modified,
            item_count=len(parsed.items) if parsed is not None else None,
            new_count=sum(1 for it in stored if not it.changed),
            next_due=_next_due(feed, now),
        )
        s.commit()
    for alert_id in alert_ids:
        log.debug("alert_created", alert=alert_id, feed=feed.id)
    return FeedOutcome(
        feed.id,
        ok=True,
        status=result.status,
        items=len(parsed.items) if parsed is not None else 0,
        new=len(stored),
        alerts=len(alert_ids),
    )


def _match(
    ctx: Context, watchlist: Watchlist, feed: FeedJob, items: Sequence[store.StoredItem]
) -> list[store.NewAlert]:
    rules = {r.id: r for r in watchlist.rules}
    out: list[store.NewAlert] = []
    for item in items:
        for hit in watchlist.match(item.data, feed.tags):
            rule = rules[hit.rule_id]
            # A rule alerts only on items first seen since it (in its current form) became
            # active: an edited item from before a rule existed is not news for that rule.
            since = ctx.active_since.get(rule.id)
            if since is None or item.first_seen_at < since:
                continue
            out.append(_new_alert(ctx, rule, item.id, item.data, hit))
    return out


def _new_alert(ctx: Context, rule: Rule, item_id: int, item: ItemData, hit: Hit) -> store.NewAlert:
    return store.NewAlert(
        item_id,
        rule.id,
        rule.name,
        rule.severity,
        hit,
        routes_for(rule, ctx.channels),
        story_url=item.url,
        story_hash=item.content_hash or None,
        reporter=f"{item.feed_id} ({item.source})" if item.source else item.feed_id,
    )


def _cool_down(
    s: Session, watchlist: Watchlist, alerts: list[store.NewAlert], now: dt.datetime
) -> list[store.NewAlert]:
    """A rule with a cooldown alerts at most once per window: later hits inside the window
    are dropped (the items are stored and can be found with test-rule --since)."""
    kept: list[store.NewAlert] = []
    last: dict[str, dt.datetime | None] = {}
    for a in alerts:
        rule = watchlist.get(a.rule_id)
        if rule is None or rule.cooldown is None:
            kept.append(a)
            continue
        if a.rule_id not in last:
            last[a.rule_id] = store.last_alert_at(s, a.rule_id)
        prev = last[a.rule_id]
        if prev is not None and now - prev < rule.cooldown:
            continue
        last[a.rule_id] = now
        kept.append(a)
    return kept


def _holds(ctx: Context) -> dict[str, dt.timedelta]:
    """Digest channels hold each new alert until the end of their window."""
    return {name: r.digest for name, r in ctx.channels.items() if r.digest is not None}


def routes_for(rule: Rule, channels: Mapping[str, ChannelRoute]) -> tuple[str, ...]:
    """The channels a rule's alerts go to: its `notify` list (default every channel), less
    the channels whose minimum severity is above the rule's."""
    names = rule.notify if rule.notify is not None else tuple(channels)
    rank = SEVERITY_RANK[rule.severity]
    return tuple(
        n for n in names if n in channels and SEVERITY_RANK[channels[n].min_severity] <= rank
    )


# --- rules becoming active ----------------------------------------------------------------


def rule_fingerprint(rule: Rule, watchlist: Watchlist) -> str:
    """What a rule means: its query, fields and feeds, and the groups (which a query may
    use). Editing any of them makes the rule new again; renaming or re-severity does not."""
    blob = json.dumps(
        [rule.query_text, rule.fields, rule.feeds, sorted(watchlist.groups.items())],
        default=list,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def activate(ctx: Context, watchlist: Watchlist) -> list[str]:
    """Record when each rule of this watchlist became active (new or edited rules: now) and
    run the backfill that a new rule asks for. Returns the ids of rules that became active."""
    now = utcnow()
    prints = {r.id: rule_fingerprint(r, watchlist) for r in watchlist.rules}
    with db.session(ctx.engine) as s:
        states = store.activate_rules(s, prints, now)
        s.commit()
    ctx.active_since = {rid: st.active_since for rid, st in states.items() if st.active_since}
    fresh = [rid for rid, st in states.items() if st.active_since == now]
    for rule in watchlist.rules:
        state = states[rule.id]
        if rule.backfill is not None and not state.backfilled:
            n = _backfill(ctx, watchlist, rule, now - rule.backfill, now)
            with db.session(ctx.engine) as s:
                store.mark_backfilled(s, rule.id, state.fingerprint)
                s.commit()
            log.info("rule_backfilled", rule=rule.id, window=str(rule.backfill), alerts=n)
    return fresh


def _backfill(
    ctx: Context, watchlist: Watchlist, rule: Rule, since: dt.datetime, now: dt.datetime
) -> int:
    """Evaluate one rule on the stored items first seen in its backfill window, once."""
    created = 0
    after = 0
    while True:
        with db.session(ctx.engine) as s:
            page = store.items_since(s, since, after_id=after)
            if not page:
                return created
            alerts = []
            for item_id, _seen, data in page:
                if rule.feeds is not None and not _in_feeds(data, rule.feeds, ctx.feeds):
                    continue
                hit = rule.compiled.match(data, rule_id=rule.id)
                if hit is not None:
                    alerts.append(_new_alert(ctx, rule, item_id, data, hit))
            created += len(store.add_alerts(s, alerts, now, _holds(ctx)))
            s.commit()
            after = page[-1][0]


def _in_feeds(item: ItemData, wanted: Sequence[str], feeds: Mapping[str, FeedJob]) -> bool:
    job = feeds.get(item.feed_id)
    tags = job.tags if job is not None else ()
    return item.feed_id in wanted or any(t in wanted for t in tags)


def purge(ctx: Context) -> int:
    """Empty the text of items older than the retention (tombstones keep their identity)."""
    with db.session(ctx.engine) as s:
        n = store.purge(s, utcnow() - ctx.retention)
        s.commit()
    if n:
        log.info("purged", items=n, older_than=str(ctx.retention))
    return n


# --- delivery ------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0


async def deliver(ctx: Context, *, wait: bool = True, limit: int = 1000) -> DeliveryReport:
    """Send every due delivery: claim it, send outside any transaction, record the outcome
    (sent; retry later with backoff; or dead). Deliveries due together on a digest channel,
    or more than the channel's `burst`, go out as one digest.

    wait=False (the daemon) starts the sends and returns: a slow receiver then holds up only
    its own sends (each is leased, so the next tick does not take it again), never the others.
    The report then counts nothing; outcomes reach the observers and the log.
    """
    now = utcnow()
    units = await asyncio.to_thread(_claim_units, ctx, now, limit)
    report = DeliveryReport()
    tasks = [asyncio.create_task(_send(ctx, unit, report)) for unit in units]
    if wait:
        await asyncio.gather(*tasks)
    else:
        for task in tasks:
            ctx.inflight.add(task)
            task.add_done_callback(ctx.inflight.discard)
    return report


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    channel: str
    attempt: int  # this attempt's number, from 1
    msg: AlertMessage


def _claim_units(ctx: Context, now: dt.datetime, limit: int) -> list[list[_Claimed]]:
    """Claim due deliveries; return them as send units (one alert, or a digest's alerts)."""
    units: list[list[_Claimed]] = []
    with db.session(ctx.engine) as s:
        by_channel: dict[str, list[Delivery]] = {}
        for d in store.due_deliveries(s, now, limit):
            by_channel.setdefault(d.channel, []).append(d)
        for channel, rows in by_channel.items():
            route = ctx.channels.get(channel)
            budget = _budget(s, channel, route, now)
            if budget == 0:
                continue  # over the rate limit: they stay due and go together later
            if route is not None and route.digest is not None:
                rows = store.pending_deliveries(s, channel, now)  # the window's worth
            claimed = _claim_rows(ctx, s, rows, now, route)
            many = route is not None and len(claimed) > min(route.burst, budget)
            if route is not None and (route.digest is not None or many):
                units.append(claimed)
            else:
                units.extend([c] for c in claimed)
    return [u for u in units if u]


def _budget(s: Session, channel: str, route: ChannelRoute | None, now: dt.datetime) -> int:
    """How many more messages the channel may send this hour (a large number if unlimited)."""
    if route is None or route.rate_limit is None:
        return 1 << 30
    sent = store.messages_sent_since(s, channel, now - dt.timedelta(hours=1))
    return max(0, route.rate_limit - sent)


def _claim_rows(
    ctx: Context, s: Session, rows: Sequence[Delivery], now: dt.datetime, route: ChannelRoute | None
) -> list[_Claimed]:
    lease = route.lease if route is not None else ctx.retry.lease
    out = []
    for d in rows:
        attempt = d.attempts + 1  # read before the claim's UPDATE refreshes the object
        if not store.claim_delivery(s, d, now, lease):
            continue
        s.commit()
        alert = s.get(Alert, d.alert_id)
        item = s.get(Item, alert.item_id) if alert else None
        if alert is None or item is None:
            continue
        assert d.id is not None
        out.append(_Claimed(d.id, d.channel, attempt, alert_message(alert, item)))
    return out


def alert_message(alert: Alert, item: Item) -> AlertMessage:
    assert alert.created_at is not None
    return AlertMessage(
        id=alert.id,
        created_at=alert.created_at,
        rule_id=alert.rule_id,
        rule_name=alert.rule_name,
        severity=alert.severity,
        title=item.title,
        url=item.url,
        source=item.source,
        feed=item.feed_id,
        published_at=item.published_at,
        summary=item.summary or item.content[:500],
        terms=tuple(alert.terms),
        snippet=alert.snippet,
        also_reported_by=tuple(alert.also_reported_by),
    )


def digest_id(unit: Sequence[_Claimed]) -> str:
    """The same alerts give the same digest id, so a retried digest keeps its webhook-id
    and Message-ID."""
    ids = ",".join(sorted(c.msg.id for c in unit))
    return "dgst_" + hashlib.sha256(ids.encode()).hexdigest()[:28]


async def _send(ctx: Context, unit: list[_Claimed], report: DeliveryReport) -> None:
    channel = unit[0].channel
    route = ctx.channels.get(channel)
    batch = route is not None and (route.digest is not None or len(unit) > 1)
    batch_id = digest_id(unit) if batch else None
    error: DeliveryError | None = None
    if route is None:
        error = DeliveryError(f"channel {channel!r} is no longer configured", permanent=True)
    else:
        try:
            async with asyncio.timeout(route.timeout + 5):
                if batch_id is not None:
                    window = route.digest or dt.timedelta(0)
                    await route.notifier.send_digest(batch_id, [c.msg for c in unit], window)
                else:
                    await route.notifier.send(unit[0].msg)
        except TimeoutError:
            error = DeliveryError(f"no answer within {route.timeout:g}s")
        except DeliveryError as exc:
            error = exc
    now = utcnow()
    ids = [c.id for c in unit]
    attempt = max(c.attempt for c in unit)
    alert_ids = [c.msg.id for c in unit]
    if error is None:
        await asyncio.to_thread(_settle, ctx, ids, None, None, now, batch_id)
        report.sent += len(unit)
        log.info("delivered", channel=channel, alerts=alert_ids, digest=batch_id, attempt=attempt)
        _observe(ctx, unit, "sent")
        return
    give_up = error.permanent or attempt >= ctx.retry.max_attempts
    delay = ctx.retry.delay(attempt, error.retry_after)
    nxt = None if give_up else now + dt.timedelta(seconds=delay)
    await asyncio.to_thread(_settle, ctx, ids, str(error), nxt, now, None)
    _observe(ctx, unit, "dead" if give_up else "retry", nxt)
    if give_up:
        report.dead += len(unit)
        log.error(
            "delivery_dead", channel=channel, alerts=alert_ids, attempts=attempt, error=str(error)
        )
    else:
        report.failed += len(unit)
        log.warning(
            "delivery_retry",
            channel=channel,
            alerts=alert_ids,
            attempts=attempt,
            error=str(error),
            next_attempt=nxt.isoformat() if nxt else None,
        )


def _observe(
    ctx: Context, unit: Sequence[_Claimed], result: str, nxt: dt.datetime | None = None
) -> None:
    for c in unit:
        outcome = DeliveryOutcome(
            c.channel, c.msg.id, c.msg.rule_id, c.msg.severity, result, c.attempt, nxt
        )
        for observe in ctx.on_delivery:
            observe(outcome)


def _settle(
    ctx: Context,
    delivery_ids: Sequence[int],
    error: str | None,
    nxt: dt.datetime | None,
    now: dt.datetime,
    batch_id: str | None,
) -> None:
    try:
        with db.session(ctx.engine) as s:
            for delivery_id in delivery_ids:
                if error is None:
                    store.mark_sent(s, delivery_id, now, digest_id=batch_id)
                else:
                    store.mark_failed(s, delivery_id, error, nxt)
            s.commit()
    except StoreError as exc:
        # The send happened; if we cannot record it, the lease expires and it is sent again
        # (at least once). Say so rather than fail the whole batch.
        log.error("delivery_not_recorded", deliveries=list(delivery_ids), error=str(exc))
