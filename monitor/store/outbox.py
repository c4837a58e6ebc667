"""The delivery outbox: due deliveries, claims (a lease on each attempt), and the outcome of
each attempt (sent, retry at a time, dead)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.models import Alert, AlertMessage, Delivery, Item


def due_deliveries(session: Session, now: dt.datetime, limit: int = 100) -> list[Delivery]:
    return list(
        session.exec(
            select(Delivery)
            .where(col(Delivery.status) == "pending")
            .where(col(Delivery.next_attempt_at) <= now)
            .order_by(col(Delivery.next_attempt_at))
            .limit(limit)
        ).all()
    )


def claim_delivery(
    session: Session, delivery: Delivery, now: dt.datetime, lease: dt.timedelta
) -> bool:
    """Take a due delivery for one attempt. While the attempt runs its next_attempt_at is
    now + lease: if this process dies, the delivery is tried again after the lease."""
    result = session.execute(
        sa.update(Delivery)
        .where(col(Delivery.id) == delivery.id)
        .where(col(Delivery.status) == "pending")
        .where(col(Delivery.next_attempt_at) == delivery.next_attempt_at)
        .values(next_attempt_at=now + lease, attempts=col(Delivery.attempts) + 1)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def mark_sent(
    session: Session, delivery_id: int, now: dt.datetime, *, digest_id: str | None = None
) -> None:
    session.execute(
        sa.update(Delivery)
        .where(col(Delivery.id) == delivery_id)
        .values(
            status="sent", sent_at=now, last_error=None, next_attempt_at=None, digest_id=digest_id
        )
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
    """A digest's worth: the channel's pending deliveries that are due or still held for
    the window (never tried). Not those in flight or waiting to retry."""
    return list(
        session.exec(
            select(Delivery)
            .where(col(Delivery.channel) == channel)
            .where(col(Delivery.status) == "pending")
            .where(sa.or_(col(Delivery.attempts) == 0, col(Delivery.next_attempt_at) <= now))
            .order_by(col(Delivery.id))
            .limit(limit)
        ).all()
    )


def mark_failed(
    session: Session, delivery_id: int, error: str, next_attempt: dt.datetime | None
) -> None:
    """Schedule another attempt at `next_attempt`, or give up (status dead) when None."""
    values: dict[str, object] = {"last_error": error[:1000], "next_attempt_at": next_attempt}
    if next_attempt is None:
        values["status"] = "dead"
    session.execute(sa.update(Delivery).where(col(Delivery.id) == delivery_id).values(**values))


def requeue_delivery(session: Session, alert_id: str, now: dt.datetime) -> int:
    """Put the dead deliveries of an alert back to pending, due now; returns how many."""
    result = session.execute(
        sa.update(Delivery)
        .where(col(Delivery.alert_id) == alert_id)
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
    msg: AlertMessage


def claim_for_sending(
    session: Session, rows: Sequence[Delivery], now: dt.datetime, lease: dt.timedelta
) -> list[Claimed]:
    """Claim each due delivery (committing each claim, so that another process sees it at
    once) and read its alert and item; deliveries another process took are left out."""
    out = []
    for d in rows:
        attempt = d.attempts + 1  # read before the claim's UPDATE refreshes the object
        if not claim_delivery(session, d, now, lease):
            continue
        session.commit()
        alert = session.get(Alert, d.alert_id)
        item = session.get(Item, alert.item_id) if alert else None
        if alert is None or item is None:
            continue
        assert d.id is not None
        out.append(Claimed(d.id, d.channel, attempt, alert_message(alert, item)))
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
