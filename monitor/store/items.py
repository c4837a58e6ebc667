"""Items: the store decides what is new. Inserts unseen items, updates changed ones, returns
only those; keeps tombstones at retention; pages through stored items for backfills."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from monitor.models import Item, ItemData


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
