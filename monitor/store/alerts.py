"""Alerts: one per (rule, item) and per (rule, story), each with a pending delivery per
channel, written in the caller's transaction together with the item that caused it."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.db import chunks, insert_ignore_many
from monitor.models import Alert, Delivery, Hit, RuleState


@dataclass(frozen=True, slots=True)
class NewAlert:
    item_id: int
    rule_id: str
    rule_name: str
    severity: str
    hit: Hit
    channels: tuple[str, ...]
    story_url: str | None = None  # the item's canonical url
    story_hash: str | None = None  # the item's content hash
    reporter: str = ""  # how also_reported_by names this copy: "feed (source)"
    copy: Mapping[str, Any] | None = None  # this copy among the story's sources
    cooldown: bool = False  # the rule has one: the alert says how many matches it held back


def new_alert_id(now: float | None = None) -> str:
    """Time-ordered, unique, opaque: 12 hex digits of milliseconds + 16 random hex digits."""
    ms = int((now if now is not None else time.time()) * 1000)
    return f"alrt_{ms:012x}{secrets.token_hex(8)}"


def add_alerts(
    session: Session,
    alerts: Sequence[NewAlert],
    now: dt.datetime,
    hold: Mapping[str, dt.timedelta] | None = None,
) -> list[str]:
    """Insert alerts that do not exist yet for (rule, item) or (rule, story), and a pending
    delivery for each of their channels, due now or, for a channel in `hold` (digests), at
    the end of its window. Returns the ids of the alerts actually created."""
    return [i for i in write_alerts(session, alerts, now, hold) if i is not None]


def write_alerts(
    session: Session,
    alerts: Sequence[NewAlert],
    now: dt.datetime,
    hold: Mapping[str, dt.timedelta] | None = None,
) -> list[str | None]:
    """add_alerts, one answer per alert: the id created, or None (the rule has an alert on
    this item or story already; a later copy of a story is named on the first one's alert).

    A few statements for all of them, whatever their number: the unique constraints decide,
    inside one multi-row INSERT … ON CONFLICT DO NOTHING (the first of several copies in the
    list wins, and a concurrent writer's row wins silently); the ids that went in are read
    back."""
    if not alerts:
        return []
    conn = session.connection()  # Core on the session's transaction: no ORM bookkeeping
    existing: set[tuple[str, int]] = set()
    for chunk in chunks(sorted({a.item_id for a in alerts})):
        existing.update((r, i) for r, i in conn.execute(_EXISTING, {"items": list(chunk)}))
    rows: list[dict[str, Any] | None] = []
    for a in alerts:
        if (a.rule_id, a.item_id) in existing:
            rows.append(None)
            continue
        existing.add((a.rule_id, a.item_id))
        rows.append(_row(a, now, _take_held_back(session, a.rule_id) if a.cooldown else 0))
    tried = [r for r in rows if r is not None]
    for part in chunks(tried):
        insert_ignore_many(session, Alert, list(part))
    inserted: set[str] = set()
    for ids in chunks([r["id"] for r in tried]):
        inserted.update(conn.execute(_INSERTED, {"ids": list(ids)}).scalars())
    out: list[str | None] = []
    deliveries: list[dict[str, Any]] = []
    for a, row in zip(alerts, rows, strict=True):
        if row is None or row["id"] not in inserted:
            if row is not None:
                if row["held_back"]:
                    hold_back(session, {a.rule_id: row["held_back"]})  # not its to report
                _also_reported(session, a)
            out.append(None)
            continue
        out.append(row["id"])
        deliveries += [
            {
                "alert_id": row["id"],
                "channel": channel,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now + (hold or {}).get(channel, dt.timedelta(0)),
            }
            for channel in a.channels
        ]
    if deliveries:
        conn.execute(sa.insert(Delivery.__table__), deliveries)  # type: ignore[attr-defined]
    return out


_ALERT: sa.Table = Alert.__table__  # type: ignore[attr-defined]
_EXISTING = sa.select(_ALERT.c.rule_id, _ALERT.c.item_id).where(
    _ALERT.c.item_id.in_(sa.bindparam("items", expanding=True))
)
_INSERTED = sa.select(_ALERT.c.id).where(_ALERT.c.id.in_(sa.bindparam("ids", expanding=True)))


def _row(a: NewAlert, now: dt.datetime, held: int) -> dict[str, Any]:
    return {
        "id": new_alert_id(),
        "rule_id": a.rule_id,
        "item_id": a.item_id,
        "created_at": now,
        "rule_name": a.rule_name,
        "severity": a.severity,
        "terms": list(a.hit.terms),
        "snippet": a.hit.snippet,
        "also_reported_by": [],
        "sources": [],
        "story_url": a.story_url,
        "story_hash": a.story_hash,
        "held_back": held,
    }


def hold_back(session: Session, counts: Mapping[str, int]) -> None:
    """Count matches a rule's cooldown dropped; its next alert reports them."""
    for rule_id, n in counts.items():
        if n:
            session.execute(
                sa.update(RuleState)
                .where(col(RuleState.rule_id) == rule_id)
                .values(held_back=col(RuleState.held_back) + n)
            )


def _take_held_back(session: Session, rule_id: str) -> int:
    """The matches held back since the rule's last alert, reset to 0 (in this transaction;
    the row lock keeps two workers from both taking them)."""
    n = session.exec(
        select(RuleState.held_back).where(col(RuleState.rule_id) == rule_id).with_for_update()
    ).first()
    if n:
        session.execute(
            sa.update(RuleState).where(col(RuleState.rule_id) == rule_id).values(held_back=0)
        )
    return int(n or 0)


def held_back_now(session: Session) -> dict[str, int]:
    """Rules whose cooldown has held matches back since their last alert."""
    rows = session.exec(
        select(RuleState.rule_id, RuleState.held_back).where(col(RuleState.held_back) > 0)
    ).all()
    return {r: int(n) for r, n in rows}


def _also_reported(session: Session, a: NewAlert) -> None:
    """Another copy of a story this rule already alerted on: name its feed on that alert."""
    keys = [col(Alert.story_hash) == a.story_hash]
    if a.story_url:
        keys.append(col(Alert.story_url) == a.story_url)
    first = session.exec(
        select(Alert).where(col(Alert.rule_id) == a.rule_id).where(sa.or_(*keys))
    ).first()
    if first is None or first.item_id == a.item_id or not a.reporter:
        return
    sources = list(first.sources or [])
    if a.copy is not None and not any(
        c.get("url") == a.copy.get("url") and c.get("feed") == a.copy.get("feed") for c in sources
    ):
        first.sources = [*sources, dict(a.copy)]
        session.add(first)
    if a.reporter not in first.also_reported_by:
        first.also_reported_by = [*first.also_reported_by, a.reporter]
        session.add(first)


def last_alert_at(session: Session, rule_id: str) -> dt.datetime | None:
    return session.exec(
        select(sa.func.max(Alert.created_at)).where(col(Alert.rule_id) == rule_id)
    ).one()
