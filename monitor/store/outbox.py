"""The delivery outbox: due deliveries, claims (a lease on each attempt), and the outcome of
each attempt (sent, retry at a time, dead). A delivery carries an alert or a feed health
change (delivery.alert_id or delivery.health_id)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.db import chunks
from monitor.models import Alert, AlertMessage, Delivery, HealthMessage, Item
from monitor.store.health import health_messages


def due_deliveries(session: Session, now: dt.datetime, limit: int = 100) -> list[Delivery]:
    """Pending deliveries whose time has come, oldest first, locked for this transaction on
    PostgreSQL (FOR UPDATE SKIP LOCKED: another worker claiming at the same time skips them
    instead of waiting)."""
    return list(
        session.exec(
            select(Delivery)
            .where(col(Delivery.status) == "pending")
            .where(col(Delivery.next_attempt_at) <= now)
            .order_by(col(Delivery.next_attempt_at))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def mark_sent(
    session: Session, delivery_ids: Sequence[int], now: dt.datetime, *, digest_id: str | None = None
) -> None:
    """These deliveries were sent (a digest settles hundreds at once)."""
    _update(
        session,
        delivery_ids,
        status="sent",
        sent_at=now,
        last_error=None,
        next_attempt_at=None,
        digest_id=digest_id,
        claimed_by=None,
    )


def _update(session: Session, delivery_ids: Sequence[int], **values: object) -> None:
    """The same values on these deliveries: one UPDATE per 500 ids."""
    for part in chunks(list(delivery_ids)):
        session.execute(
            sa.update(Delivery).where(col(Delivery.id).in_(list(part))).values(**values)
        )


def messages_sent_since(session: Session, channel: str, since: dt.datetime) -> int:
    """Messages (not alerts) a channel has sent since then: a digest is one message."""
    key = sa.func.coalesce(col(Delivery.digest_id), sa.cast(col(Delivery.id), sa.String))
    return int(
        session.exec(
            select(sa.func.count(sa.distinct(key)))
            .where(col(Delivery.channel) == channel)
            .where(col(Delivery.status) == "sent")
            .where(col(Delivery.sent_at) >= since)
        ).one()
    )


def pending_deliveries(
    session: Session, channel: str, now: dt.datetime, limit: int = 5000
) -> list[Delivery]:
    """A digest's worth: the channel's pending alert deliveries that are due or still held
    for the window (never tried). Not those in flight or waiting to retry; not health
    messages, which are never held."""
    return list(
        session.exec(
            select(Delivery)
            .where(col(Delivery.channel) == channel)
            .where(col(Delivery.status) == "pending")
            .where(col(Delivery.alert_id).is_not(None))
            .where(sa.or_(col(Delivery.attempts) == 0, col(Delivery.next_attempt_at) <= now))
            .order_by(col(Delivery.id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def mark_failed(
    session: Session, delivery_ids: Sequence[int], error: str, next_attempt: dt.datetime | None
) -> None:
    """Schedule another attempt at `next_attempt`, or give up (status dead) when None."""
    values: dict[str, object] = {
        "last_error": error[:1000],
        "next_attempt_at": next_attempt,
        "claimed_by": None,
    }
    if next_attempt is None:
        values["status"] = "dead"
    _update(session, delivery_ids, **values)


def release_deliveries(
    session: Session, delivery_ids: Sequence[int], *, worker: str, now: dt.datetime
) -> None:
    """Hand back claimed deliveries whose attempt was cut off: due again now."""
    session.execute(
        sa.update(Delivery)
        .where(col(Delivery.id).in_(list(delivery_ids)))
        .where(col(Delivery.claimed_by) == worker)
        .where(col(Delivery.status) == "pending")
        .values(next_attempt_at=now, claimed_by=None)
    )


def requeue_delivery(session: Session, alert_id: str, now: dt.datetime) -> int:
    """Put the dead deliveries of an alert (or of a health change) back to pending, due now;
    returns how many."""
    result = session.execute(
        sa.update(Delivery)
        .where(sa.or_(col(Delivery.alert_id) == alert_id, col(Delivery.health_id) == alert_id))
        .where(col(Delivery.status) == "dead")
        .values(status="pending", next_attempt_at=now, attempts=0)
    )
    return int(getattr(result, "rowcount", 0))


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for one attempt, with what the channel needs to send it."""

    id: int
    channel: str
    attempt: int  # this attempt's number, from 1
    msg: AlertMessage | HealthMessage
    took_over: bool = False  # an earlier attempt's lease ran out without being settled

    @property
    def health(self) -> bool:
        return isinstance(self.msg, HealthMessage)


def claim(
    session: Session,
    rows: Sequence[Delivery],
    now: dt.datetime,
    lease: dt.timedelta,
    *,
    worker: str,
) -> list[Claimed]:
    """Claim these deliveries for one attempt each (one UPDATE; the caller commits once for
    the batch) and read their alerts and items. While the attempt runs, next_attempt_at is
    the end of the lease: if this worker dies, the delivery is tried again after it. A row
    another worker holds (a second SQLite process) is left out."""
    if not rows:
        return []
    before = {d.id: d for d in rows}
    free = sa.or_(col(Delivery.claimed_by).is_(None), col(Delivery.next_attempt_at) <= now)
    result = session.execute(
        sa.update(Delivery)
        .where(col(Delivery.id).in_(list(before)))
        .where(col(Delivery.status) == "pending")
        .where(free)
        .values(
            next_attempt_at=now + lease,
            attempts=col(Delivery.attempts) + 1,
            claimed_by=worker,
        )
        .returning(col(Delivery.id), col(Delivery.attempts))
        .execution_options(synchronize_session=False)
    )
    won: dict[int, int] = {row[0]: row[1] for row in result.all()}
    if not won:
        return []
    alert_ids = {a for i in won if (a := before[i].alert_id) is not None}
    found = session.connection().execute(_MESSAGES.where(_ALERT.c.id.in_(list(alert_ids))))
    messages: dict[str, AlertMessage | HealthMessage] = {
        row.id: alert_message(row) for row in found
    }
    messages.update(
        health_messages(session, [h for i in won if (h := before[i].health_id) is not None])
    )
    out = []
    for delivery_id, attempt in won.items():
        d = before[delivery_id]
        msg = messages.get(d.alert_id or d.health_id or "")
        if msg is not None:
            out.append(Claimed(delivery_id, d.channel, attempt, msg, d.claimed_by is not None))
    out.sort(key=lambda c: c.id)
    return out


# What a message needs of an alert and its item, as Core rows: ORM objects of both (every
# column, the item's categories decoded, identity-mapped) cost half of `once`'s last claim.
_ALERT: sa.Table = Alert.__table__  # type: ignore[attr-defined]
_ITEM: sa.Table = Item.__table__  # type: ignore[attr-defined]
_MESSAGES = sa.select(
    *(_ALERT.c[n] for n in ("id", "created_at", "rule_id", "rule_name", "severity")),
    *(_ALERT.c[n] for n in ("terms", "snippet", "also_reported_by", "held_back")),
    *(_ITEM.c[n] for n in ("title", "url", "source", "feed_id", "published_at", "summary")),
    sa.func.substr(_ITEM.c.content, 1, 500).label("lead"),
).join_from(_ALERT, _ITEM, _ITEM.c.id == _ALERT.c.item_id)


def alert_message(row: Any) -> AlertMessage:
    """An alert's message from its _MESSAGES row (a Core row: attributes by column name)."""
    assert row.created_at is not None
    return AlertMessage(
        id=row.id,
        created_at=row.created_at,
        rule_id=row.rule_id,
        rule_name=row.rule_name,
        severity=row.severity,
        title=row.title,
        url=row.url,
        source=row.source,
        feed=row.feed_id,
        published_at=row.published_at,
        summary=row.summary or row.lead or "",
        terms=tuple(row.terms or ()),
        snippet=row.snippet,
        also_reported_by=tuple(row.also_reported_by or ()),
        held_back=row.held_back,
    )
