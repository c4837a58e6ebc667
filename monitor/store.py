"""The store decides what is new. It inserts items and returns only the new or changed ones;
it writes alerts and their deliveries in the caller's transaction; it keeps per-feed state
(validators, health, next due time) and the delivery outbox.

Every function takes an open Session and does not commit: the orchestrator owns the
transaction, so an item and the alerts it caused are committed together or not at all.

Claiming (feeds to poll, deliveries to send) is an optimistic UPDATE ... WHERE the row is
still due, which moves the due time forward by a lease. One process wins each row on SQLite
and PostgreSQL alike; a process that dies mid-work leaves the row due again once the lease
expires, so another process (or the same one after restart) picks it up.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from monitor.models import Alert, Delivery, Feed, Hit, Item, ItemData, RuleState


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item the store found new (or whose text changed), with its database id."""

    id: int
    data: ItemData
    first_seen_at: dt.datetime
    changed: bool


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


# --- feeds ---------------------------------------------------------------------------------


def sync_feeds(session: Session, feeds: Iterable[tuple[str, str]], now: dt.datetime) -> None:
    """Make the feed table hold a row for every configured (id, url); a changed URL resets
    the HTTP validators (they belong to the old URL). Rows of removed feeds stay, unpolled."""
    existing = {f.id: f for f in session.exec(select(Feed)).all()}
    for feed_id, url in feeds:
        row = existing.get(feed_id)
        if row is None:
            # Insert-or-ignore: several processes starting together all add the new feeds.
            _insert_ignore(session, Feed, id=feed_id, url=url, next_due_at=now)
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


# --- items ---------------------------------------------------------------------------------


def upsert_items(
    session: Session, feed_id: str, items: Sequence[ItemData], now: dt.datetime
) -> list[StoredItem]:
    """Insert unseen items; update items whose text changed (same identity, new hash).
    Returns only those two kinds; an unchanged item is dropped here and goes no further."""
    by_guid = {it.guid: it for it in items}  # a guid repeated in one fetch: the last wins
    if not by_guid:
        return []
    known: dict[str, Item] = {}
    guids = list(by_guid)
    for start in range(0, len(guids), 500):  # keep IN lists within every backend's limits
        chunk = guids[start : start + 500]
        rows = session.exec(
            select(Item).where(col(Item.feed_id) == feed_id).where(col(Item.guid).in_(chunk))
        ).all()
        known.update((r.guid, r) for r in rows)
    fresh: list[tuple[Item, ItemData, bool]] = []
    for guid, data in by_guid.items():
        row = known.get(guid)
        if row is None:
            row = Item(
                feed_id=feed_id,
                guid=guid,
                published_at=data.published_at or now,
                first_seen_at=now,
                **_fields(data),
            )
            session.add(row)
            fresh.append((row, data, False))
        elif row.content_hash != data.content_hash:
            for key, value in _fields(data).items():
                setattr(row, key, value)
            row.updated_at = now
            session.add(row)
            fresh.append((row, data, True))
    session.flush()  # assigns ids
    out = []
    for row, data, changed in fresh:
        assert row.id is not None and row.first_seen_at is not None
        out.append(StoredItem(row.id, data, row.first_seen_at, changed))
    return out


def _fields(data: ItemData) -> dict[str, Any]:
    return {
        "url": data.url,
        "title": data.title,
        "summary": data.summary,
        "content": data.content,
        "author": data.author,
        "categories": list(data.categories),
        "source": data.source,
        "language": data.language,
        "content_hash": data.content_hash,
    }


# --- alerts and the outbox -----------------------------------------------------------------


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
        inserted = _insert_ignore(
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
        )
        if not inserted:
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


def _insert_ignore(session: Session, table: type, **values: object) -> bool:
    """INSERT … ON CONFLICT DO NOTHING against every unique constraint of the table."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(table).values(**values).on_conflict_do_nothing()
    # RETURNING rather than rowcount: psycopg reports -1 for INSERT ... ON CONFLICT here.
    return session.execute(stmt.returning(sa.literal(1))).first() is not None


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


def purge(session: Session, before: dt.datetime) -> int:
    """Retention: empty the text of items first seen before `before`. The row stays as a
    tombstone (feed, guid, hash), so the item is never taken for new and never alerts again;
    alerts keep their title. Returns how many items were emptied."""
    result = session.execute(
        sa.update(Item)
        .where(col(Item.first_seen_at) < before)
        .where(sa.or_(col(Item.summary) != "", col(Item.content) != ""))
        .values(summary="", content="")
    )
    return int(getattr(result, "rowcount", 0))


# --- rule activation -----------------------------------------------------------------------


def activate_rules(
    session: Session, fingerprints: dict[str, str], now: dt.datetime
) -> dict[str, RuleState]:
    """Record each rule's current fingerprint; a rule that is new or whose fingerprint
    changed becomes active `now` (and owes its backfill again). Returns every rule's state."""
    # Insert-or-ignore first: several processes loading the same new rule at once must not
    # fail on the primary key; whichever row won, every process then reads the same state.
    for rule_id, fp in fingerprints.items():
        _insert_ignore(session, RuleState, rule_id=rule_id, fingerprint=fp, active_since=now)
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


def items_since(
    session: Session, since: dt.datetime, *, after_id: int = 0, limit: int = 500
) -> list[tuple[int, dt.datetime, ItemData]]:
    """Stored items first seen at or after `since`, in id order, one page at a time."""
    rows = session.exec(
        select(Item)
        .where(col(Item.first_seen_at) >= since)
        .where(col(Item.id) > after_id)
        .order_by(col(Item.id))
        .limit(limit)
    ).all()
    out = []
    for row in rows:
        assert row.id is not None and row.first_seen_at is not None
        out.append((row.id, row.first_seen_at, item_data(row)))
    return out


def item_data(row: Item) -> ItemData:
    return ItemData(
        feed_id=row.feed_id,
        guid=row.guid,
        url=row.url,
        title=row.title,
        summary=row.summary,
        content=row.content,
        author=row.author,
        categories=tuple(row.categories or ()),
        source=row.source,
        language=row.language,
        published_at=row.published_at,
        content_hash=row.content_hash,
    )


def last_alert_at(session: Session, rule_id: str) -> dt.datetime | None:
    return session.exec(
        select(sa.func.max(Alert.created_at)).where(col(Alert.rule_id) == rule_id)
    ).one()
