"""Polling's database work: one writer, many feeds per transaction.

Every write of a poll cycle (claims, each feed's items, alerts and state, failures, releases)
runs on one thread, `Writer`, so that writers never contend for the database (SQLite has one
write lock, and its busy handler sleeps: six threads taking turns at it made a 2,000-feed
cycle four times slower than one). Feeds' results queue up while a batch is being written
and go in together, up to BATCH feeds per transaction; a feed whose writing fails takes no
other feed with it (the batch is written again one feed at a time).

Within a feed, as before: the store decides what is new; only the new and changed items are
matched; an item and the alerts it caused are committed together. So are a feed's new health
state and the message that tells it (health.py decides the state and the next interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session

from monitor import db, store
from monitor import health as hl
from monitor.alert.routes import ChannelRoute, holds, routes_for
from monitor.fetch import FetchResult
from monitor.models import Hit
from monitor.outcomes import FeedOutcome
from monitor.records import ItemData, ParsedFeed, Sketch
from monitor.rules import Rule, Watchlist
from monitor.store.feeds import FeedRow
from monitor.store.items import StoredItem

log = structlog.get_logger("monitor.storing")

BATCH = 100  # feeds per transaction, at most
# A batch waits (at most LINGER s) for FULL feeds while polls that will bring more are under
# way: a transaction's fixed costs (the feed rows, a dozen statements, the commit) are shared
# by more feeds. Without it a cycle of 2,000 feeds came in 840 batches of 2.4 feeds, which
# cost the writer twice the CPU of batches of 25; batches of 50 (up to 100) cost it a fifth
# less than batches of 25 (up to 50), the commits most (docs/design.md). The polls waiting
# for a batch give their places to new ones (pipeline.HELD).
LINGER = 0.25
FULL = 50
MAX_AGE_FLOOR = 86_400.0  # seconds: a Cache-Control max-age beyond a day is taken as a day
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FeedJob:
    """A configured feed, as polling sees it."""

    id: str
    url: str
    interval: dt.timedelta  # its own `interval:`, else poll.interval
    pinned: bool = False  # its own `interval:`: not adaptive
    tags: tuple[str, ...] = ()
    backfill: bool = False
    full_text: bool | str = False  # True, False or "auto" (fulltext.wanted)
    pages_dir: str | None = None  # read linked pages from here (the demo)


@dataclass(frozen=True, slots=True)
class Fetched:
    """One feed's good poll, to be stored."""

    feed: FeedJob
    result: FetchResult
    parsed: ParsedFeed | None  # None: not modified (304, or a byte-identical body)
    now: dt.datetime
    body_hash: str | None = None  # of the body parsed
    # The watchlist's hits on the items, by guid, made in the worker that parsed them (only
    # items with hits), and the watchlist version that made them; None: match here.
    hits: Mapping[str, list[Hit]] | None = None
    hits_by: str | None = None
    # The items' sketches for the story step, by guid, made in the worker; None: make here.
    sketches: Mapping[str, Sketch | None] | None = None


@dataclass(frozen=True, slots=True)
class Health:
    """What feed health needs: the rules' settings, and the channels told of each change."""

    policy: hl.Policy = field(default_factory=hl.Policy)
    channels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rules:
    """What alerting needs, read at writing time (the rules in force may change under a
    cycle): the watchlist, when each rule became active, the channels to route to, and feed
    health's settings and channels."""

    watchlist: Callable[[], Watchlist]
    active_since: Callable[[], Mapping[str, dt.datetime]]
    channels: Mapping[str, ChannelRoute]
    story_window: dt.timedelta = dt.timedelta(days=3)  # stories.window
    health: Health = field(default_factory=Health)


class Writer:
    def __init__(self, engine: Engine, rules: Rules) -> None:
        self.engine = engine
        self.rules = rules
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")
        self._queue: list[tuple[Fetched, asyncio.Future[FeedOutcome]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.coming = 0  # polls under way that will store (`expecting`)
        self._writing = 0  # feeds of the batch being written
        self._arrived = asyncio.Event()
        self.handed = asyncio.Event()  # set when a poll hands its feed over (`holding`)

    @property
    def holding(self) -> int:
        """Polls whose feeds the writer holds, queued or being written: past their fetch and
        parse, so the cycle does not count them against its polls under way."""
        return len(self._queue) + self._writing

    @contextlib.contextmanager
    def expecting(self) -> Iterator[None]:
        """Around a poll that will store: a batch being gathered waits for it (LINGER)."""
        self.coming += 1
        try:
            yield
        finally:
            self.coming -= 1
            # One fewer on its way: the batch may have nothing left to wait for. The polls
            # of the batch just written leave only after it, and without this wake-up the
            # next batch lingered its whole LINGER for them (0.25 s at the end of a cycle).
            self._arrived.set()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) on the writer's thread (a claim, a failure, a release)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def store(self, fetched: Fetched) -> FeedOutcome:
        """Store one feed's poll with whatever else is waiting; its outcome."""
        future: asyncio.Future[FeedOutcome] = asyncio.get_running_loop().create_future()
        self._queue.append((fetched, future))
        self._arrived.set()
        self.handed.set()
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await asyncio.shield(future)  # a cancelled poll does not cancel the batch

    async def _flush(self) -> None:
        while self._queue:
            await self._linger()
            batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
            self._writing = len(batch)
            try:
                results = await self.call(self._write, [f for f, _ in batch])
            finally:
                self._writing = 0
            for (_fetched, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _linger(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER
        while len(self._queue) < FULL and self.coming - self._writing > len(self._queue):
            left = deadline - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._arrived.wait()

    def _write(self, batch: Sequence[Fetched]) -> list[FeedOutcome | BaseException]:
        try:
            with db.session(self.engine) as s:
                outcomes: list[FeedOutcome | BaseException] = [*store_feeds(s, self.rules, batch)]
                s.commit()
            return outcomes
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
        return [self._write([f])[0] for f in batch]  # one at a time: a bad one alone fails

    def close(self) -> None:
        self._thread.shutdown(wait=True)


def store_feeds(s: Session, rules: Rules, batch: Sequence[Fetched]) -> list[FeedOutcome]:
    """Store feeds' items and write the alerts they cause (in the caller's transaction), a
    few statements for the whole batch: the feed rows, then items, then alerts, then the
    feeds' new state (one flush)."""
    rows = store.load_feeds(s, [f.feed.id for f in batch], lock=True)
    parsed = [(f.feed.id, f.parsed.items, f.now) for f in batch if f.parsed is not None]
    stored_of = iter(store.upsert_many(s, parsed))
    stored = [next(stored_of) if f.parsed is not None else [] for f in batch]
    watchlist = rules.watchlist()
    # A new feed's existing items are only recorded (no flood on the first poll) unless the
    # feed asks for backfill.
    found = [
        _match(rules, watchlist, f, new) if _alerts(rows[f.feed.id], f) else []
        for f, new in zip(batch, stored, strict=True)
    ]
    stories = _stories(s, rules, batch, found)
    cooling = _CoolDown(s, watchlist)
    alerts: list[tuple[int, store.NewAlert]] = []  # (index in batch, alert)
    held: list[dict[str, int]] = []
    for n, (f, hits) in enumerate(zip(batch, found, strict=True)):
        matched = [
            new_alert(rules.channels, rule, item, hit, stories.get(item.id))
            for item, rule, hit in hits
        ]
        kept, held_back = cooling.apply(matched, f.now)
        alerts += [(n, a) for a in kept]
        held.append(held_back)
    created = [0] * len(batch)
    if alerts:
        at = max(f.now for f in batch)
        ids = store.write_alerts(s, [a for _, a in alerts], at, holds(rules.channels))
        for (n, _a), alert_id in zip(alerts, ids, strict=True):
            created[n] += alert_id is not None
    for held_back in held:
        store.hold_back(s, held_back)  # after the alerts: they count towards the next one
    outcomes = [
        _record(s, rules.health, rows[f.feed.id], f, new, created[n], held[n])
        for n, (f, new) in enumerate(zip(batch, stored, strict=True))
    ]
    store.save_feeds(s, rows.values())
    return outcomes


def _stories(
    s: Session,
    rules: Rules,
    batch: Sequence[Fetched],
    found: Sequence[Sequence[tuple[StoredItem, Rule, Hit]]],
) -> dict[int, str]:
    """The story of every item that is about to alert: new ones through the story step,
    edited ones keep theirs. Only those: an item no rule matches never alerts, so its story
    is never asked for, and the story step costs in proportion to the matches, not to the
    items polled."""
    if not any(found):
        return {}
    from monitor import folding  # by the first batch with a match

    new: dict[int, StoredItem] = {}
    sketches: dict[int, Sketch | None] = {}
    edited: set[int] = set()
    for f, hits in zip(batch, found, strict=True):
        for it, _rule, _hit in hits:
            if it.changed:
                edited.add(it.id)
            elif it.id not in new:
                new[it.id] = it
                made = f.sketches or {}
                guid = it.data.guid
                sketches[it.id] = made[guid] if guid in made else _sketch_here(it.data)
    out = folding.assign(
        s, list(new.values()), sketches, max(f.now for f in batch), rules.story_window
    )
    out.update(store.item_stories(s, edited) if edited else {})
    return out


def _sketch_here(data: ItemData) -> Sketch | None:
    """The sketch of an item the worker did not sketch (it matched with rules since changed):
    only then does the daemon's process import the sketching code and numpy (0.1-0.15 s)."""
    from monitor.stories import item_sketch

    return item_sketch(data)


def store_feed(s: Session, rules: Rules, f: Fetched) -> FeedOutcome:
    """One feed's store_feeds."""
    return store_feeds(s, rules, [f])[0]


def _alerts(row: FeedRow, f: Fetched) -> bool:
    return f.parsed is not None and (row.initialized or f.feed.backfill)


def _record(
    s: Session,
    health: Health,
    row: FeedRow,
    f: Fetched,
    stored: Sequence[store.StoredItem],
    alerts: int,
    held_back: dict[str, int],
) -> FeedOutcome:
    feed, result, parsed, now = f.feed, f.result, f.parsed, f.now
    policy = health.policy
    previous = row.health
    new = sum(1 for it in stored if not it.changed)
    # Cache-Control max-age is a floor (at most a day): the server says when to come back
    max_age = min(result.max_age or 0.0, MAX_AGE_FLOOR)
    if hl.proves_nothing(row.health, row.last_error_kind, parsed is not None):
        # The same broken body as last time: still failing, still backed off.
        nxt = next_due(policy, _backoff(health, feed, row, now, row.consecutive_errors), now)
        store.record_unproven(row, now=now, status=result.status, next_due=nxt)
    else:
        gaps, last_new = hl.add_gaps(
            row.gaps, row.last_new_at, now, new=new, first=not row.initialized,
            published=(it.published_at for it in parsed.items) if parsed is not None else (),
        )  # fmt: skip
        seconds = hl.interval(
            policy, feed.interval, pinned=feed.pinned, gaps=gaps, last_new_at=last_new, now=now
        )
        store.record_success(
            row,
            now=now,
            status=result.status,
            etag=result.etag,
            last_modified=result.last_modified,
            item_count=len(parsed.items) if parsed is not None else None,
            new_count=new,
            next_due=next_due(policy, seconds, now, max_age),
            body_hash=f.body_hash if parsed is not None else None,
            moved_to=result.moved_to,
            title=parsed.title if parsed is not None else None,
            health=hl.after_success(policy, row.health, gaps, last_new, now),
            gaps=gaps,
            last_new_at=last_new,
            interval_s=seconds,
        )
    change = _told(s, health, row, previous, now)
    edited = sum(1 for it in stored if it.changed)
    return FeedOutcome(
        feed.id,
        ok=True,
        status=result.status,
        items=len(parsed.items) if parsed is not None else 0,
        new=len(stored) - edited,
        changed=edited,
        alerts=alerts,
        held_back=held_back,
        health=change,
    )


def _told(
    s: Session, health: Health, row: FeedRow, previous: str, now: dt.datetime
) -> tuple[str, str] | None:
    """A change of state is recorded, and queued for the health channels, in the
    transaction that changed the row: (previous, now) when there was one."""
    if row.health == previous:
        return None
    store.add_health_change(s, row, previous, now, health.channels)
    return previous, row.health


def _backoff(health: Health, feed: FeedJob, row: FeedRow, now: dt.datetime, errors: int) -> float:
    """A broken feed is asked less often: 1, 2, 4 … up to 16 intervals (at most a day)."""
    seconds = hl.interval(
        health.policy, feed.interval, pinned=feed.pinned, gaps=row.gaps,
        last_new_at=row.last_new_at, now=now,
    )  # fmt: skip
    return min(seconds * min(2 ** max(errors - 1, 0), 16), 86400.0)


def record_failure(
    engine: Engine,
    health: Health,
    feed: FeedJob,
    now: dt.datetime,
    status: int | None,
    error: str,
    kind: str,
    retry_after: float | None,
) -> tuple[str, str] | None:
    """A failed poll on the feed's row, its health state, and the message when the state
    changed (in one transaction); returns (previous, now) for a change."""
    with db.session(engine) as s:
        row = store.get_feed(s, feed.id, lock=True)
        previous = row.health
        errors = row.consecutive_errors + 1
        # Backed off, or what its server asked for with Retry-After, whichever is longer.
        backoff = _backoff(health, feed, row, now, errors)
        nxt = next_due(health.policy, backoff, now, retry_after)
        store.record_failure(
            row, now=now, status=status, error=error, kind=kind, next_due=nxt,
            health=hl.after_failure(health.policy, row.health, errors),
        )  # fmt: skip
        store.save_feeds(s, [row])
        change = _told(s, health, row, previous, now)
        s.commit()
    return change


def next_due(
    policy: hl.Policy, seconds: float, now: dt.datetime, at_least: float | None = None
) -> dt.datetime:
    """`seconds` from now, plus jitter (bounded by a fraction of them), or `at_least`."""
    delay = seconds + hl.jitter(policy, seconds)
    return now + dt.timedelta(seconds=max(delay, at_least or 0.0))


def _match(
    rules: Rules, watchlist: Watchlist, f: Fetched, items: Sequence[StoredItem]
) -> list[tuple[StoredItem, Rule, Hit]]:
    """The hits that may alert: (item, rule, hit)."""
    by_id = {r.id: r for r in watchlist.rules}
    active_since = rules.active_since()
    # The worker's hits, unless the rules changed since it matched.
    made = f.hits if f.hits is not None and f.hits_by == watchlist.version else None
    out: list[tuple[StoredItem, Rule, Hit]] = []
    for item in items:
        hits = (
            made.get(item.data.guid, []) if made is not None
            else watchlist.match(item.data, f.feed.tags)
        )  # fmt: skip
        for hit in hits:
            rule = by_id[hit.rule_id]
            # A rule alerts only on items first seen since it (in its current form) became
            # active: an edited item from before a rule existed is not news for that rule.
            since = active_since.get(rule.id)
            if since is None or item.first_seen_at < since:
                continue
            out.append((item, rule, hit))
    return out


def new_alert(
    channels: Mapping[str, ChannelRoute],
    rule: Rule,
    stored: StoredItem,
    hit: Hit,
    story: str | None = None,
) -> store.NewAlert:
    """The alert a rule's hit on a stored item makes, routed to the rule's channels; one per
    rule and story (`story`: the item's, else its content hash)."""
    item = stored.data
    return store.NewAlert(
        stored.id,
        rule.id,
        rule.name,
        rule.severity,
        hit,
        routes_for(rule.notify, rule.severity, channels),
        story_url=item.url,
        story_hash=story or item.content_hash or None,
        reporter=f"{item.feed_id} ({item.source})" if item.source else item.feed_id,
        copy={
            "feed": item.feed_id,
            "url": item.url,
            "publisher": item.source,
            "first_seen": stored.first_seen_at.isoformat(),
        },
        cooldown=rule.cooldown is not None,
    )


class _CoolDown:
    """A rule with a cooldown alerts at most once per window: later hits inside the window
    are held back, never silently: counted per rule (the metric, `monitor alerts`), and the
    rule's next alert says how many it held back. The items are stored and can be found with
    test-rule --since. One per writer's batch: a feed's alert starts the window for the
    feeds after it in the batch."""

    def __init__(self, s: Session, watchlist: Watchlist) -> None:
        self.s = s
        self.watchlist = watchlist
        self.last: dict[str, dt.datetime | None] = {}

    def apply(
        self, alerts: list[store.NewAlert], now: dt.datetime
    ) -> tuple[list[store.NewAlert], dict[str, int]]:
        """The alerts kept, and the count held back per rule."""
        kept: list[store.NewAlert] = []
        held: dict[str, int] = {}
        for a in alerts:
            rule = self.watchlist.get(a.rule_id)
            if rule is None or rule.cooldown is None:
                kept.append(a)
                continue
            if a.rule_id not in self.last:
                self.last[a.rule_id] = store.last_alert_at(self.s, a.rule_id)
            prev = self.last[a.rule_id]
            if prev is not None and now - prev < rule.cooldown:
                held[a.rule_id] = held.get(a.rule_id, 0) + 1
                continue
            self.last[a.rule_id] = now
            kept.append(a)
        return kept, held
