"""Items: the store decides what is new. Inserts unseen items, updates changed ones, returns
only those (never one retention left a tombstone of); purges in batches at retention; pages
through stored items for backfills."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.db import insert_ignore_many
from monitor.models import Alert, Item, ItemData, Tombstone


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item the store found new (or whose text changed), with its database id."""

    id: int
    data: ItemData
    first_seen_at: dt.datetime
    changed: bool


def upsert_items(
    session: Session, feed_id: str, items: Sequence[ItemData], now: dt.datetime
) -> list[StoredItem]:
    """Insert unseen items; update items whose text changed (same identity, new hash).
    Returns only those two kinds; an unchanged item is dropped here and goes no further.

    Bulk statements (one INSERT … RETURNING for the new items, one executemany UPDATE for the
    changed ones): a cycle of thousands of feeds writes tens of thousands of items."""
    by_guid = {it.guid: it for it in items}  # a guid repeated in one fetch: the last wins
    if not by_guid:
        return []
    known: dict[str, tuple[int, str, dt.datetime]] = {}  # guid -> (id, hash, first seen)
    guids = list(by_guid)
    for chunk in _chunks(guids):
        rows = session.execute(
            sa.select(col(Item.id), col(Item.guid), col(Item.content_hash), col(Item.first_seen_at))
            .where(col(Item.feed_id) == feed_id)
            .where(col(Item.guid).in_(chunk))
        ).all()
        known.update((g, (i, h, seen)) for i, g, h, seen in rows)
    purged = _tombstoned(session, feed_id, [g for g in guids if g not in known])
    new: list[ItemData] = []
    changed: list[tuple[int, ItemData, dt.datetime]] = []
    for guid, data in by_guid.items():
        row = known.get(guid)
        if row is None:
            if guid not in purged:  # purged at retention: seen long ago, not news
                new.append(data)
        elif row[1] != data.content_hash:
            changed.append((row[0], data, row[2]))
    out: list[StoredItem] = []  # in the feed's order
    if new:
        table: sa.Table = Item.__table__  # type: ignore[attr-defined]
        ids = session.execute(
            # Core, not the ORM's bulk insert: no per-row bookkeeping (5x fewer instructions)
            sa.insert(table).returning(table.c.id, sort_by_parameter_order=True),
            [
                {
                    "feed_id": feed_id,
                    "guid": d.guid,
                    "published_at": d.published_at or now,
                    "first_seen_at": now,
                    **_fields(d),
                }
                for d in new
            ],
        ).scalars()
        out += [StoredItem(i, d, now, False) for i, d in zip(ids, new, strict=True)]
    if changed:
        table = Item.__table__  # type: ignore[attr-defined]
        session.execute(
            sa.update(table).where(table.c.id == sa.bindparam("item_id")),
            [{"item_id": i, "updated_at": now, **_fields(d)} for i, d, _seen in changed],
        )
        out += [StoredItem(i, d, seen, True) for i, d, seen in changed]
    order = {g: n for n, g in enumerate(by_guid)}
    out.sort(key=lambda x: order[x.data.guid])
    return out


def _chunks(values: Sequence[str], size: int = 500) -> list[Sequence[str]]:
    """IN lists within every backend's limits."""
    return [values[i : i + size] for i in range(0, len(values), size)]


def _tombstoned(session: Session, feed_id: str, guids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(guids):
        found.update(
            session.exec(
                select(Tombstone.guid)
                .where(col(Tombstone.feed_id) == feed_id)
                .where(col(Tombstone.guid).in_(chunk))
            ).all()
        )
    return found


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


PURGE_BATCH = 500


def purge_batch(session: Session, before: dt.datetime, now: dt.datetime) -> int:
    """One batch of retention (the caller commits, and calls again while this returns > 0):
    items first seen before `before` that no alert refers to are deleted and leave a
    tombstone (feed, guid, content hash), so that the feed republishing one is not news;
    items an alert refers to keep their row (the alert shows their title and link) but lose
    their text. Returns how many items this batch purged."""
    alerted = select(Alert.item_id)
    old = select(Item).where(col(Item.first_seen_at) < before)
    gone = session.exec(
        old.where(col(Item.id).not_in(alerted)).order_by(col(Item.id)).limit(PURGE_BATCH)
    ).all()
    if gone:
        tombstones = [
            {
                "feed_id": i.feed_id,
                "guid": i.guid,
                "content_hash": i.content_hash,
                "first_seen_at": i.first_seen_at,
                "purged_at": now,
            }
            for i in gone
        ]
        insert_ignore_many(session, Tombstone, tombstones)
        session.execute(
            sa.delete(Item).where(col(Item.id).in_([i.id for i in gone])),
            execution_options={"synchronize_session": False},
        )
    kept = session.exec(
        select(Item.id)
        .where(col(Item.first_seen_at) < before)
        .where(col(Item.id).in_(alerted))
        .where(sa.or_(col(Item.summary) != "", col(Item.content) != ""))
        .limit(PURGE_BATCH)
    ).all()
    if kept:
        session.execute(
            sa.update(Item).where(col(Item.id).in_(list(kept))).values(summary="", content=""),
            execution_options={"synchronize_session": False},
        )
    return len(gone) + len(kept)


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
