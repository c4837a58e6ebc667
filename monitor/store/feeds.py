"""Per-feed state: the configured feeds, which are due, claims, and the outcome of each poll
(validators, health, next due time), kept as data on the feed row."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from monitor.db import chunks, insert_ignore_many, update_many
from monitor.models import Feed

_FEED: sa.Table = Feed.__table__  # type: ignore[attr-defined]


def sync_feeds(session: Session, feeds: Iterable[tuple[str, str]], now: dt.datetime) -> None:
    """Make the feed table hold a row for every configured (id, url); a changed URL resets
    the HTTP validators (they belong to the old URL). Rows of removed feeds stay, disabled
    (their items and alerts are kept; a feed configured again picks up where it was)."""
    configured = dict(feeds)
    existing = {
        r.id: r for r in session.execute(sa.select(_FEED.c.id, _FEED.c.url, _FEED.c.enabled))
    }  # plain rows: a start with thousands of feeds builds no ORM objects
    # Insert-or-ignore, all in one statement: several processes starting together all add
    # the new feeds (2,000 of them one statement each cost a first start a few tenths of a s).
    added = [
        {"id": fid, "url": url, "next_due_at": now}
        for fid, url in configured.items()
        if fid not in existing
    ]
    for part in chunks(added):
        insert_ignore_many(session, Feed, list(part))
    for feed_id, url in configured.items():
        row = existing.get(feed_id)
        if row is None:
            continue
        if row.url != url:  # the operator changed it: validators and moves are old news
            session.execute(
                sa.update(_FEED)
                .where(_FEED.c.id == feed_id)
                .values(url=url, etag=None, last_modified=None, body_hash=None, moved_to=None,
                        enabled=True)
            )  # fmt: skip
        elif not row.enabled:
            session.execute(sa.update(_FEED).where(_FEED.c.id == feed_id).values(enabled=True))
    gone = [fid for fid, row in existing.items() if fid not in configured and row.enabled]
    for start in range(0, len(gone), 500):
        session.execute(
            sa.update(Feed).where(col(Feed.id).in_(gone[start : start + 500])).values(enabled=False)
        )


@dataclass(frozen=True, slots=True)
class FeedClaim:
    """A feed this worker now holds for one poll, with what the fetch needs."""

    id: str
    url: str  # where to fetch it: its URL, or where it moved for good
    etag: str | None
    last_modified: str | None
    body_hash: str | None  # of the last body parsed: the same bytes are not parsed again
    took_over: bool  # another worker's claim had expired without being released
    # Polled well before (else its first poll only records what is there): read at the claim,
    # which nobody else changes while this worker holds the feed.
    initialized: bool = False


def _claim_statements(force: bool) -> tuple[sa.Select[Any], sa.Update]:
    """claim_feeds' two statements, built once (their construction and cache keys were a
    third of a claim's Python): the page of candidates and the update that takes them."""
    now: sa.BindParameter[dt.datetime] = sa.bindparam("now")
    held = sa.and_(_FEED.c.claimed_by.is_not(None), _FEED.c.next_due_at > now)
    due = sa.or_(_FEED.c.next_due_at.is_(None), _FEED.c.next_due_at <= now)
    free = sa.not_(held) if force else due
    order = (sa.nulls_first(_FEED.c.last_fetch_at), _FEED.c.id) if force else (_FEED.c.next_due_at,)
    pick = (
        sa.select(*_CLAIM_COLUMNS)
        .where(_FEED.c.enabled)
        .where(free)
        .order_by(*order)
        .limit(sa.bindparam("page", type_=sa.Integer))
        .offset(sa.bindparam("offset", type_=sa.Integer))
        .with_for_update(skip_locked=True)
    )
    take = (
        sa.update(_FEED)
        .where(_FEED.c.id.in_(sa.bindparam("ids", expanding=True)))
        .where(free)
        .values(next_due_at=sa.bindparam("due_at"), claimed_by=sa.bindparam("worker"))
        .returning(_FEED.c.id)
    )
    return pick, take


_CLAIM_COLUMNS = (
    _FEED.c.id, _FEED.c.url, _FEED.c.moved_to, _FEED.c.etag, _FEED.c.last_modified,
    _FEED.c.body_hash, _FEED.c.claimed_by, _FEED.c.initialized,
)  # fmt: skip
_CLAIM_DUE = _claim_statements(force=False)
_CLAIM_ANY = _claim_statements(force=True)


def claim_feeds(
    session: Session,
    now: dt.datetime,
    *,
    worker: str,
    lease: dt.timedelta,
    limit: int,
    room: Callable[[str], bool] = lambda _url: True,
    skip: Collection[str] = (),
    force: bool = False,
) -> list[FeedClaim]:
    """Claim up to `limit` due feeds (oldest due first) in one statement batch, and commit.

    `room(url)` says whether the fetcher can start one more fetch to that URL's host now; a
    feed whose host is busy is not claimed (its lease would run out while it waits). `skip`:
    feeds this cycle has already polled. `force`: due or not (`once --all`), but never a feed
    another worker holds. On PostgreSQL the candidates are locked with FOR UPDATE SKIP
    LOCKED, so workers claiming together take different feeds and never wait on each other;
    the UPDATE's own condition keeps a second SQLite process from taking a feed twice.
    """
    # Core on the session's connection, plain rows, not ORM objects (the ORM's execute path
    # was most of a claim's cost); `skip` is applied here rather than as a NOT IN in the
    # query, which grew with every batch of a cycle (2,000 feeds: ~160 claims binding up to
    # 2,000 ids each). `--all` takes the least recently fetched first, so what this cycle
    # polled sinks to the end; pages follow while a whole page is skipped.
    pick, take = _CLAIM_ANY if force else _CLAIM_DUE
    page = limit * 4 + 8
    conn = session.connection()
    chosen: list[Any] = []  # rows of _CLAIM_COLUMNS
    for offset in itertools.count(0, page):
        rows = conn.execute(pick, {"now": now, "page": page, "offset": offset}).all()
        fresh = [r for r in rows if r.id not in skip]
        for r in fresh:
            if len(chosen) < limit and room(r.moved_to or r.url):
                chosen.append(r)
        if fresh or len(rows) < page:
            break
    if not chosen:
        session.commit()
        return []
    claimed = set(
        conn.execute(
            take,
            {"ids": [r.id for r in chosen], "now": now, "due_at": now + lease, "worker": worker},
        ).scalars()
    )
    session.commit()
    return [
        FeedClaim(
            r.id, r.moved_to or r.url, r.etag, r.last_modified, r.body_hash,
            r.claimed_by is not None, bool(r.initialized),
        )
        for r in chosen
        if r.id in claimed
    ]  # fmt: skip


def release_feed(session: Session, feed_id: str, *, worker: str, now: dt.datetime) -> None:
    """Hand back a claimed feed that was not polled after all: due again now."""
    session.execute(
        sa.update(Feed)
        .where(col(Feed.id) == feed_id)
        .where(col(Feed.claimed_by) == worker)
        .values(next_due_at=now, claimed_by=None)
    )


@dataclass(slots=True, eq=False)
class FeedRow:
    """A feed's row as a poll's outcome reads and updates it: plain attributes, written back
    by save_feeds in one statement for a whole batch. (The ORM's Feed objects cost the
    writer more than the database did: a tracked attribute set, then a flush, for each of
    twenty columns of every feed; a third of a cycle of 304s.) tests/test_storing.py checks
    that it holds every column of the table."""

    id: str
    url: str
    etag: str | None
    last_modified: str | None
    initialized: bool
    last_fetch_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_status: int | None
    last_error: str | None
    consecutive_errors: int
    last_item_count: int
    total_items: int
    next_due_at: dt.datetime | None
    claimed_by: str | None
    enabled: bool
    last_error_kind: str | None
    health: str
    health_since: dt.datetime | None
    last_new_at: dt.datetime | None
    gaps: list[float] | None
    interval_s: float | None
    body_hash: str | None
    moved_to: str | None
    title: str | None


ROW_COLUMNS = tuple(f.name for f in fields(FeedRow))
# What a poll's outcome writes back: not the configuration's part (id, url, enabled), which
# sync_feeds owns.
_OUTCOME = tuple(n for n in ROW_COLUMNS if n not in ("id", "url", "enabled"))
_ROWS = sa.select(*(_FEED.c[n] for n in ROW_COLUMNS))


def load_feeds(
    session: Session, feed_ids: Sequence[str], *, lock: bool = False
) -> dict[str, FeedRow]:
    """Feed rows by id, in one query for many (a writer's batch); a missing id is a KeyError.
    `lock`: held for this transaction on PostgreSQL (FOR UPDATE, in id order, so two
    writers never deadlock), so that two workers that both polled a feed (one's lease ran
    out) count its errors and see a change of its health state one after the other, never
    both from the same row. Changes are written by save_feeds."""
    rows: dict[str, FeedRow] = {}
    conn = session.connection()
    for chunk in chunks(sorted(set(feed_ids))):
        query = _ROWS.where(_FEED.c.id.in_(chunk))
        if lock:
            query = query.order_by(_FEED.c.id).with_for_update()
        rows.update((r[0], FeedRow(*r)) for r in conn.execute(query))
    for feed_id in feed_ids:
        if feed_id not in rows:
            raise KeyError(feed_id)
    return rows


def get_feed(session: Session, feed_id: str, *, lock: bool = False) -> FeedRow:
    return load_feeds(session, [feed_id], lock=lock)[feed_id]


def save_feeds(session: Session, rows: Iterable[FeedRow]) -> None:
    """Write back what polls' outcomes changed in these rows (record_success and the like)."""
    update_many(session, Feed, "id", [{n: getattr(r, n) for n in ("id", *_OUTCOME)} for r in rows])


def record_success(
    feed: FeedRow,
    *,
    now: dt.datetime,
    status: int,
    etag: str | None,
    last_modified: str | None,
    item_count: int | None,
    new_count: int,
    next_due: dt.datetime,
    body_hash: str | None = None,
    moved_to: str | None = None,
    title: str | None = None,
    health: str | None = None,
    gaps: Sequence[float] | None = None,
    last_new_at: dt.datetime | None = None,
    interval_s: float | None = None,
) -> None:
    """A good poll: validators, counts, the next due time, the hash of the body it parsed, a
    permanent move, the feed's title; its health state, cadence (gaps, the last new item)
    and interval as health.py decided them; the claim is released. (On the row: save_feeds
    writes it, as it does for record_failure and record_unproven.)"""
    _set_health(feed, health, now)
    if gaps is not None:
        feed.gaps = list(gaps)
    if last_new_at is not None:
        feed.last_new_at = last_new_at
    if interval_s is not None:
        feed.interval_s = interval_s
    if title:
        feed.title = title[:500]
    if body_hash is not None:
        feed.body_hash = body_hash
    if moved_to is not None and moved_to != (feed.moved_to or feed.url):
        feed.moved_to = moved_to
    feed.last_fetch_at = feed.last_success_at = now
    feed.last_status = status
    feed.last_error = feed.last_error_kind = None
    feed.consecutive_errors = 0
    if status == 304:
        # RFC 9111 4.3.4: a 304 updates the validators it carries; the others stay. (An ETag
        # alone must not erase the Last-Modified we send next time.)
        feed.etag = etag if etag is not None else feed.etag
        feed.last_modified = last_modified if last_modified is not None else feed.last_modified
    else:
        feed.etag, feed.last_modified = etag, last_modified
    if item_count is not None:
        feed.last_item_count = item_count
    feed.total_items += new_count
    feed.initialized = True
    feed.next_due_at = next_due
    feed.claimed_by = None


def record_failure(
    feed: FeedRow,
    *,
    now: dt.datetime,
    status: int | None,
    error: str,
    kind: str,
    next_due: dt.datetime,
    health: str | None = None,
) -> None:
    """A failed poll, kept as data: status, error and its kind, one more consecutive error,
    the next due time (backed off by the caller), the health state the caller decided (with
    this error counted); the claim is released."""
    _set_health(feed, health, now)
    feed.last_fetch_at = now
    feed.last_status = status
    feed.last_error = error[:1000]
    feed.last_error_kind = kind[:40]
    feed.consecutive_errors += 1
    feed.next_due_at = next_due
    feed.claimed_by = None


def record_unproven(feed: FeedRow, *, now: dt.datetime, status: int, next_due: dt.datetime) -> None:
    """A poll that answered but proves nothing (a 304 after a failed parse: the same broken
    body): the fetch and the next due time are recorded; errors and state stay as they are."""
    feed.last_fetch_at = now
    feed.last_status = status
    feed.next_due_at = next_due
    feed.claimed_by = None


def _set_health(feed: FeedRow, health: str | None, now: dt.datetime) -> None:
    if health is not None and health != feed.health:
        feed.health = health
        feed.health_since = now
