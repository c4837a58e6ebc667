"""Rules becoming active: when each rule, as now written, took effect, and the backfill a
new rule asks for (evaluated once per version of the rule over the stored items).

A rule alerts only on items first seen since it became active, so adding or editing a rule
never alerts on old news, unless it says `backfill:` with a window.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator

import structlog
from sqlalchemy.engine import Engine

from monitor import db, store
from monitor.alert.routes import holds
from monitor.models import utcnow
from monitor.pipeline import Context
from monitor.rules import Rule, Watchlist
from monitor.store.items import StoredItem
from monitor.storing import new_alert
from monitor.units import format_duration

log = structlog.get_logger("monitor.activation")


def rule_fingerprint(rule: Rule, watchlist: Watchlist) -> str:
    """What a rule means: its query, fields and feeds, and the groups (which a query may
    use). Editing any of them makes the rule new again; renaming or re-severity does not."""
    blob = json.dumps(
        [rule.query_text, rule.fields, rule.feeds, sorted(watchlist.groups.items())],
        default=list,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def activate(ctx: Context, watchlist: Watchlist) -> list[str]:
    """Record when each rule of this watchlist became active (new or edited rules: now) and
    run the backfill that a new rule asks for. Returns the ids of rules that became active."""
    now = utcnow()
    prints = {r.id: rule_fingerprint(r, watchlist) for r in watchlist.rules}
    with db.session(ctx.engine) as s:
        states = store.activate_rules(s, prints, now)
        s.commit()
    ctx.active_since = {rid: st.active_since for rid, st in states.items() if st.active_since}
    fresh = [rid for rid, st in states.items() if st.active_since == now]
    for rule in watchlist.rules:
        state = states[rule.id]
        if rule.backfill is not None and not state.backfilled:
            n = _backfill(ctx, watchlist, rule, now - rule.backfill, now)
            with db.session(ctx.engine) as s:
                store.mark_backfilled(s, rule.id, state.fingerprint)
                s.commit()
            for observe in ctx.on_alerts:
                observe(n)
            log.info(
                "rule_backfilled", rule=rule.id, window=format_duration(rule.backfill), alerts=n
            )
    return fresh


def _backfill(
    ctx: Context, watchlist: Watchlist, rule: Rule, since: dt.datetime, now: dt.datetime
) -> int:
    """Evaluate one rule on the stored items first seen in its backfill window, once."""
    created = 0
    tags = {f.id: f.tags for f in ctx.feeds.values()}
    for page in stored_pages(ctx.engine, since):
        hits = []
        for stored in page:
            if not rule.applies_to(stored.data.feed_id, tags.get(stored.data.feed_id, ())):
                continue
            hit = rule.compiled.match(stored.data, rule_id=rule.id)
            if hit is not None:
                hits.append((stored, hit))
        with db.session(ctx.engine) as s:
            stories = store.item_stories(s, [stored.id for stored, _ in hits])
            alerts = [
                new_alert(ctx.channels, rule, stored, hit, stories.get(stored.id))
                for stored, hit in hits
            ]
            created += len(store.add_alerts(s, alerts, now, holds(ctx.channels)))
            s.commit()
    return created


def stored_pages(engine: Engine, since: dt.datetime) -> Iterator[list[StoredItem]]:
    """The stored items first seen at or after `since`, a page (and a session) at a time."""
    after = 0
    while True:
        with db.session(engine) as s:
            page = store.items_since(s, since, after_id=after)
        if not page:
            return
        yield [StoredItem(item_id, data, seen, False) for item_id, seen, data in page]
        after = page[-1][0]
