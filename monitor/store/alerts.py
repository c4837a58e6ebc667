"""Alerts: one per (rule, item) and per (rule, story), each with a pending delivery per
channel, written in the caller's transaction together with the item that caused it."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.db import insert_ignore
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
    the end of its window. Returns the ids of the alerts actually created. The unique
    constraints are the final word: a concurrent writer's row wins silently."""
    if not alerts:
        return []
    item_ids = {a.item_id for a in alerts}
    existing = set(
        session.exec(
            select(Alert.rule_id, Alert.item_id).where(col(Alert.item_id).in_(item_ids))
        ).all()
    )
    created: list[str] = []
    for a in alerts:
        if (a.rule_id, a.item_id) in existing:
            continue
        existing.add((a.rule_id, a.item_id))
        alert_id = new_alert_id()
        held = _take_held_back(session, a.rule_id) if a.cooldown else 0
        inserted = insert_ignore(
            session,
            Alert,
            id=alert_id,
            rule_id=a.rule_id,
            item_id=a.item_id,
            created_at=now,
            rule_name=a.rule_name,
            severity=a.severity,
            terms=list(a.hit.terms),
            snippet=a.hit.snippet,
            also_reported_by=[],
            story_url=a.story_url,
            story_hash=a.story_hash,
            held_back=held,
        )
        if not inserted:
            if held:
                hold_back(session, {a.rule_id: held})  # not this one's to report after all
            _also_reported(session, a)
            continue
        created.append(alert_id)
        for channel in a.channels:
            due = now + (hold or {}).get(channel, dt.timedelta(0))
            session.add(
                Delivery(alert_id=alert_id, channel=channel, status="pending", next_attempt_at=due)
            )
    session.flush()
    return created


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
    if a.reporter not in first.also_reported_by:
        first.also_reported_by = [*first.also_reported_by, a.reporter]
        session.add(first)


def last_alert_at(session: Session, rule_id: str) -> dt.datetime | None:
    return session.exec(
        select(sa.func.max(Alert.created_at)).where(col(Alert.rule_id) == rule_id)
    ).one()
