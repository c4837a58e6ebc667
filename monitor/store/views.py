"""Read-only views for the CLI, the HTTP endpoint and the metrics: every query they need,
so that none of them writes SQL of its own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.models import Alert, Delivery, Feed, Item


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """An alert, the item that caused it, and (when asked for) its deliveries."""

    alert: Alert
    item: Item
    deliveries: tuple[Delivery, ...] = ()


def recent_alerts(
    session: Session, limit: int, *, with_deliveries: bool = False
) -> list[AlertRecord]:
    """The newest alerts first (ties: the newer id first)."""
    rows = session.exec(
        select(Alert, Item)
        .join(Item, col(Item.id) == col(Alert.item_id))
        .order_by(col(Alert.created_at).desc(), col(Alert.id).desc())
        .limit(limit)
    ).all()
    by_alert: dict[str, list[Delivery]] = {}
    if with_deliveries and rows:
        ids = [a.id for a, _ in rows]
        for d in session.exec(select(Delivery).where(col(Delivery.alert_id).in_(ids))).all():
            if d.alert_id is not None:
                by_alert.setdefault(d.alert_id, []).append(d)
    return [
        AlertRecord(a, i, tuple(sorted(by_alert.get(a.id, ()), key=lambda d: d.channel)))
        for a, i in rows
    ]


def feeds_by_id(session: Session) -> dict[str, Feed]:
    return {f.id: f for f in session.exec(select(Feed)).all()}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What /metrics derives from the database at scrape time."""

    feeds: Sequence[Feed] = ()
    deliveries: Sequence[tuple[str, str, int]] = ()  # (channel, status, count)
    oldest_pending: Sequence[tuple[str, dt.datetime | None]] = ()  # (channel, alert created)
    alerts: Sequence[tuple[str, str, int]] = field(default_factory=list)  # (rule, severity, n)


def snapshot(session: Session) -> Snapshot:
    by_status = session.exec(
        select(col(Delivery.channel), col(Delivery.status), sa.func.count()).group_by(
            col(Delivery.channel), col(Delivery.status)
        )
    ).all()
    oldest = session.exec(
        select(col(Delivery.channel), sa.func.min(col(Alert.created_at)))
        .join(Alert, col(Alert.id) == col(Delivery.alert_id))
        .where(col(Delivery.status) == "pending")
        .group_by(col(Delivery.channel))
    ).all()
    alerts = session.exec(
        select(col(Alert.rule_id), col(Alert.severity), sa.func.count()).group_by(
            col(Alert.rule_id), col(Alert.severity)
        )
    ).all()
    return Snapshot(
        feeds=list(session.exec(select(Feed)).all()),
        deliveries=[(c, s, int(n)) for c, s, n in by_status],
        oldest_pending=[(c, t) for c, t in oldest],
        alerts=[(r, s, int(n)) for r, s, n in alerts],
    )
