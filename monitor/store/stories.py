"""The story window's index: each recent item's story, canonical URL, content hash and sketch
(story_member), and its LSH band keys (story_band). A new item's candidates come from
indexed lookups (its URL, its hash, each of its bands), never from a scan; rows older than the
window are purged. Which candidate is the same story is `folding.py`'s to say."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from monitor.db import among, insert_ignore_many, insert_tuples
from monitor.models import Item, StoryBand, StoryMember

_MEMBER: sa.Table = StoryMember.__table__  # type: ignore[attr-defined]
_BAND: sa.Table = StoryBand.__table__  # type: ignore[attr-defined]
_ITEM: sa.Table = Item.__table__  # type: ignore[attr-defined]
# On PostgreSQL, workers take this lock for the story step of a transaction, so that two
# copies written at once by two workers cannot both start a story (SQLite: one writer).
STORY_LOCK = 0x6D6F6E69746F7231  # "monitor1"


@dataclass(frozen=True, slots=True)
class Member:
    item_id: int
    story: str
    url: str | None
    content_hash: str
    sketch: bytes | None


def lock(session: Session) -> None:
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": STORY_LOCK})


def exact(
    session: Session, urls: Iterable[str], hashes: Iterable[str], since: dt.datetime
) -> list[Member]:
    """Members of the window with one of these canonical URLs or content hashes."""
    out: list[Member] = []
    conn = session.connection()
    for column, values in (
        (_MEMBER.c.url, sorted(set(urls))),
        (_MEMBER.c.content_hash, sorted(set(hashes))),
    ):
        for where in among(conn, (column,), values):
            out += _members(session, where, since)
    return out


def by_bands(session: Session, bands: Iterable[str], since: dt.datetime) -> dict[str, list[int]]:
    """For each band key, the window's items that have it."""
    out: dict[str, list[int]] = {}
    conn = session.connection()
    for where in among(conn, (_BAND.c.band,), sorted(set(bands))):
        rows = conn.execute(
            sa.select(_BAND.c.band, _BAND.c.item_id).where(where).where(_BAND.c.seen_at >= since)
        ).all()  # fetchall: one call, not one per row
        for band, item_id in rows:
            out.setdefault(band, []).append(item_id)
    return out


def members(session: Session, item_ids: Iterable[int], since: dt.datetime) -> list[Member]:
    out: list[Member] = []
    for where in among(session.connection(), (_MEMBER.c.item_id,), sorted(set(item_ids))):
        out += _members(session, where, since)
    return out


def _members(session: Session, where: sa.ColumnElement[bool], since: dt.datetime) -> list[Member]:
    rows = session.connection().execute(
        sa.select(
            _MEMBER.c.item_id, _MEMBER.c.story, _MEMBER.c.url, _MEMBER.c.content_hash,
            _MEMBER.c.sketch,
        ).where(where).where(_MEMBER.c.seen_at >= since)
    ).all()  # fmt: skip
    return [Member(*row) for row in rows]


def add(
    session: Session,
    new: Sequence[Member],
    bands: Mapping[int, Sequence[str]],
    seen_at: dt.datetime,
) -> None:
    """Record new members (and their stories on their items) and their band keys."""
    if not new:
        return
    conn = session.connection()
    conn.execute(
        sa.update(_ITEM).where(_ITEM.c.id == sa.bindparam("item_id")),
        [{"item_id": m.item_id, "story": m.story} for m in new],
    )
    insert_ignore_many(
        session,
        StoryMember,
        [
            {
                "item_id": m.item_id,
                "story": m.story,
                "url": m.url,
                "content_hash": m.content_hash,
                "sketch": m.sketch,
                "seen_at": seen_at,
            }
            for m in new
        ],
    )
    rows = [(b, m.item_id, seen_at) for m in new for b in bands.get(m.item_id, ())]
    insert_tuples(session, StoryBand, ("band", "item_id", "seen_at"), rows, ignore_conflicts=True)


def item_stories(session: Session, item_ids: Iterable[int]) -> dict[int, str]:
    """The stories of stored items (an edited item keeps its story)."""
    out: dict[int, str] = {}
    conn = session.connection()
    for where in among(conn, (_ITEM.c.id,), sorted(set(item_ids))):
        rows = conn.execute(sa.select(_ITEM.c.id, _ITEM.c.story, _ITEM.c.content_hash).where(where))
        out.update({i: story or content_hash for i, story, content_hash in rows})
    return out


def purge(session: Session, before: dt.datetime) -> int:
    """Forget the window's rows older than `before` (the items keep their stories)."""
    conn = session.connection()
    n = conn.execute(sa.delete(_BAND).where(_BAND.c.seen_at < before)).rowcount or 0
    n += conn.execute(sa.delete(_MEMBER).where(_MEMBER.c.seen_at < before)).rowcount or 0
    return int(n)
