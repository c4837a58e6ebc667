"""Per-feed state: the configured feeds, which are due, claims, and the outcome of each poll
(validators, health, next due time), kept as data on the feed row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.db import insert_ignore
from monitor.models import Feed


def sync_feeds(session: Session, feeds: Iterable[tuple[str, str]], now: dt.datetime) -> None:
    """Make the feed table hold a row for every configured (id, url); a changed URL resets
    the HTTP validators (they belong to the old URL). Rows of removed feeds stay, unpolled."""
    existing = {f.id: f for f in session.exec(select(Feed)).all()}
    for feed_id, url in feeds:
        row = existing.get(feed_id)
        if row is None:
            # Insert-or-ignore: several processes starting together all add the new feeds.
            insert_ignore(session, Feed, id=feed_id, url=url, next_due_at=now)
        elif row.url != url:
            row.url, row.etag, row.last_modified = url, None, None
            session.add(row)


def due_feeds(session: Session, ids: Sequence[str], now: dt.datetime) -> list[str]:
    """Configured feeds whose next due time has come, oldest first."""
    rows = session.exec(
        select(Feed.id)
        .where(col(Feed.id).in_(ids))
        .where(sa.or_(col(Feed.next_due_at).is_(None), col(Feed.next_due_at) <= now))
        .order_by(col(Feed.next_due_at))
    ).all()
    return list(rows)


def claim_feed(session: Session, feed_id: str, now: dt.datetime, lease: dt.timedelta) -> bool:
    """Take the feed for one poll, unless another process has just taken it."""
    result = session.execute(
        sa.update(Feed)
        .where(col(Feed.id) == feed_id)
        .where(sa.or_(col(Feed.next_due_at).is_(None), col(Feed.next_due_at) <= now))
        .values(next_due_at=now + lease)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def get_feed(session: Session, feed_id: str) -> Feed:
    feed = session.get(Feed, feed_id)
    if feed is None:
        raise KeyError(feed_id)
    return feed


def record_success(
    session: Session,
    feed: Feed,
    *,
    now: dt.datetime,
    status: int,
    etag: str | None,
    last_modified: str | None,
    item_count: int | None,
    new_count: int,
    next_due: dt.datetime,
) -> None:
    feed.last_fetch_at = feed.last_success_at = now
    feed.last_status = status
    feed.last_error = None
    feed.consecutive_errors = 0
    if etag is not None or last_modified is not None:
        feed.etag, feed.last_modified = etag, last_modified
    if item_count is not None:
        feed.last_item_count = item_count
    feed.total_items += new_count
    feed.initialized = True
    feed.next_due_at = next_due
    session.add(feed)


def record_failure(
    session: Session,
    feed: Feed,
    *,
    now: dt.datetime,
    status: int | None,
    error: str,
    next_due: dt.datetime,
) -> None:
    feed.last_fetch_at = now
    feed.last_status = status
    feed.last_error = error[:1000]
    feed.consecutive_errors += 1
    feed.next_due_at = next_due
    session.add(feed)
