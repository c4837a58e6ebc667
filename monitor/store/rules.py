"""Rule state: when each version of a rule became active, and whether its backfill ran."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.db import insert_ignore
from monitor.models import RuleState


def activate_rules(
    session: Session, fingerprints: dict[str, str], now: dt.datetime
) -> dict[str, RuleState]:
    """Record each rule's current fingerprint; a rule that is new or whose fingerprint
    changed becomes active `now` (and owes its backfill again). Returns every rule's state."""
    # Insert-or-ignore first: several processes loading the same new rule at once must not
    # fail on the primary key; whichever row won, every process then reads the same state.
    for rule_id, fp in fingerprints.items():
        insert_ignore(session, RuleState, rule_id=rule_id, fingerprint=fp, active_since=now)
    states = {s.rule_id: s for s in session.exec(select(RuleState)).all()}
    for rule_id, fp in fingerprints.items():
        state = states[rule_id]
        if state.fingerprint != fp:
            state.fingerprint, state.active_since, state.backfilled = fp, now, False
        else:
            continue
        session.add(state)
        states[rule_id] = state
    session.flush()
    return {rid: states[rid] for rid in fingerprints}


def mark_backfilled(session: Session, rule_id: str, fingerprint: str) -> None:
    session.execute(
        sa.update(RuleState)
        .where(col(RuleState.rule_id) == rule_id)
        .where(col(RuleState.fingerprint) == fingerprint)
        .values(backfilled=True)
    )
