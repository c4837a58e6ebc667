"""Feed health changes: one row per change of a feed's state, with a pending delivery per
health channel, written in the caller's transaction together with the feed row's new state
(so a change is told exactly once: a restart finds the state already changed, and the
deliveries already queued)."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Collection, Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.models import Delivery, FeedHealth, HealthMessage
from monitor.store.feeds import FeedRow


def new_health_id(now: float | None = None) -> str:
    """Time-ordered, unique, opaque, like an alert id: `fhlt_` + ms + random."""
    ms = int((now if now is not None else time.time()) * 1000)
    return f"fhlt_{ms:012x}{secrets.token_hex(8)}"


def add_health_change(
    session: Session,
    feed: FeedRow,
    previous: str,
    now: dt.datetime,
    channels: Collection[str],
) -> str:
    """Record that `feed` (its row as just updated) changed from `previous` to its current
    state, and queue the message for each channel, due now. Returns the change's id."""
    change_id = new_health_id(now.timestamp())
    session.execute(
        sa.insert(FeedHealth).values(
            id=change_id,
            feed_id=feed.id,
            created_at=now,
            state=feed.health,
            previous=previous,
            since=feed.health_since,
            consecutive_errors=feed.consecutive_errors,
            last_status=feed.last_status,
            last_error=feed.last_error,
            last_success_at=feed.last_success_at,
            last_new_at=feed.last_new_at,
            feed_url=feed.moved_to or feed.url,
            feed_title=feed.title,
        )
    )
    if channels:
        session.execute(
            sa.insert(Delivery),
            [
                {
                    "health_id": change_id,
                    "channel": channel,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                }
                for channel in channels
            ],
        )
    return change_id


def health_messages(session: Session, ids: Sequence[str]) -> dict[str, HealthMessage]:
    """The messages of these health changes, by id."""
    if not ids:
        return {}
    rows = session.exec(select(FeedHealth).where(col(FeedHealth.id).in_(list(ids)))).all()
    return {r.id: health_message(r) for r in rows}


def health_message(r: FeedHealth) -> HealthMessage:
    assert r.created_at is not None
    return HealthMessage(
        id=r.id,
        created_at=r.created_at,
        state=r.state,
        previous=r.previous,
        feed=r.feed_id,
        feed_url=r.feed_url,
        feed_title=r.feed_title,
        since=r.since,
        consecutive_errors=r.consecutive_errors,
        last_status=r.last_status,
        last_error=r.last_error,
        last_success_at=r.last_success_at,
        last_new_at=r.last_new_at,
    )


def health_changes(session: Session) -> list[tuple[str, int]]:
    """How many changes into each state were recorded (every process's, all time)."""
    rows = session.exec(
        select(col(FeedHealth.state), sa.func.count()).group_by(col(FeedHealth.state))
    ).all()
    return [(state, int(n)) for state, n in rows]
