"""Database tables (SQLModel) and the plain value types the stages pass to each other.

Tables: Feed (per-feed polling state and health, kept as data), Item (one normalized entry),
Tombstone (what is left of a purged item: enough never to take it for new again), Alert (one
per rule and item, unique), FeedHealth (one per change of a feed's health state), Delivery
(one per alert or health change and channel: the outbox), RuleState (when each version of a
rule became active).

Every change to these tables is an Alembic revision (monitor/migrations/versions/), checked
by tests/test_migrations.py to agree with the models.

Value types (monitor/records.py, re-exported here) are frozen dataclasses: stages exchange
these, never ORM rows, so that parse, rules and alert do not depend on the database.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# The value types live in records.py (the parse workers import them without SQLAlchemy);
# re-exported here, where the stages have always found them.
from monitor.records import UTC, AlertMessage, HealthMessage, Hit, ItemData, utcnow

__all__ = ["UTC", "AlertMessage", "HealthMessage", "Hit", "ItemData", "utcnow"]


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend.

    SQLite has no time zone type and would hand back naive values; we store naive UTC
    everywhere and re-attach UTC on the way out, so comparisons never mix the two.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(_NAIVE)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)

    def bind_processor(self, dialect: Any) -> Any:
        """On SQLite, process_bind_param and the dialect's DATETIME text in one step: a
        cycle binds some 50,000 times (2.4 -> 1.0 us each). A test holds the text equal to
        the two steps'."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError(_NAIVE)
            u = value.astimezone(UTC)
            return _SQLITE_DATETIME % (u.year, u.month, u.day, u.hour, u.minute, u.second,
                                       u.microsecond)  # fmt: skip

        return process


_NAIVE = "naive datetime given to the database; use aware UTC"
_SQLITE_DATETIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLAlchemy's sqlite.DATETIME default


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


# --- tables -------------------------------------------------------------------------------


class Feed(SQLModel, table=True):
    # The order `once --all` claims in (store.claim_feeds; revision 0009).
    __table_args__ = (sa.Index("ix_feed_last_fetch_at_id", "last_fetch_at", "id"),)

    id: str = Field(primary_key=True, max_length=200)
    url: str
    etag: str | None = None
    last_modified: str | None = None
    # Set after the first successful poll: before it, items are stored without alerting
    # (no flood when a feed is added) unless the feed says backfill.
    initialized: bool = False
    last_fetch_at: dt.datetime | None = _ts()
    last_success_at: dt.datetime | None = _ts()
    last_status: int | None = None
    last_error: str | None = None
    consecutive_errors: int = 0
    last_item_count: int = 0
    total_items: int = 0
    # Due time; while a worker holds the feed, the end of its lease (claimed_by says whose).
    next_due_at: dt.datetime | None = _ts(index=True)
    claimed_by: str | None = Field(default=None, max_length=100)
    enabled: bool = True  # in the configuration (a removed feed's row stays, unpolled)
    last_error_kind: str | None = Field(default=None, max_length=40)  # FetchTimeout, ParseError…
    # Health (ok, failing, stale) and since when; the posting cadence the interval follows.
    health: str = Field(default="ok", max_length=16)
    health_since: dt.datetime | None = _ts()
    last_new_at: dt.datetime | None = _ts()  # the last poll that found a new item
    gaps: list[float] = Field(default_factory=list, sa_column=sa.Column(sa.JSON))  # seconds
    interval_s: float | None = None  # the current poll interval, when adaptive
    body_hash: str | None = Field(default=None, max_length=64)  # of the last body parsed
    # Where the feed moved for good (a 301/308), fetched instead of `url` until monitor.yaml
    # names another URL.
    moved_to: str | None = None
    title: str | None = None  # as the feed names itself (health messages show it)


class Item(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("feed_id", "guid", name="uq_item_feed_guid"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: str = Field(index=True, max_length=200)
    guid: str = Field(max_length=2000)
    url: str | None = Field(default=None, index=False)
    title: str = ""
    summary: str = ""
    content: str = ""
    author: str | None = None
    categories: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON))
    source: str | None = None
    language: str | None = None
    published_at: dt.datetime | None = _ts()  # not indexed: no query asks (0008)
    first_seen_at: dt.datetime | None = _ts(index=True)
    updated_at: dt.datetime | None = _ts()
    content_hash: str = Field(max_length=64)  # not indexed: no query asks (0008)
    # Full text (a feed with full_text): "ok" when the page's article is the content, "failed"
    # when the item kept the feed's text (page_error says why); NULL: no page was asked for.
    page_status: str | None = Field(default=None, max_length=16)
    page_error: str | None = None
    # The story it belongs to (stories.py): the content hash of the story's first item, so
    # that an exact copy and a near one fold the same way; NULL before revision 0007 filled it.
    story: str | None = Field(default=None, max_length=64)  # not indexed (0008)


class StoryMember(SQLModel, table=True):
    """An item of the story window (`stories.window`): what a new item is compared with. Rows
    older than the window are purged; the item keeps its `story`."""

    __tablename__ = "story_member"

    item_id: int = Field(primary_key=True)
    story: str = Field(max_length=64)
    url: str | None = Field(default=None, max_length=2000, index=True)
    content_hash: str = Field(max_length=64, index=True)
    sketch: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    seen_at: dt.datetime | None = _ts(index=True)


class StoryBand(SQLModel, table=True):
    """LSH band keys of the window's items: a new item's candidates are the items sharing one
    of its bands (an indexed lookup per item, not a scan)."""

    __tablename__ = "story_band"

    band: str = Field(primary_key=True, max_length=40)
    item_id: int = Field(primary_key=True)
    seen_at: dt.datetime | None = _ts(index=True)


class Tombstone(SQLModel, table=True):
    """A purged item's identity and content hash: its feed republishing it is not news."""

    feed_id: str = Field(primary_key=True, max_length=200)
    guid: str = Field(primary_key=True, max_length=2000)
    content_hash: str = Field(max_length=64)
    first_seen_at: dt.datetime | None = _ts()
    purged_at: dt.datetime | None = _ts(index=True)


class Alert(SQLModel, table=True):
    # One alert per rule and item, and per rule and story: the same story from several feeds
    # (same canonical url, or same text) alerts once; later copies are listed in
    # also_reported_by. NULL story_url (an item without a link) never conflicts.
    __table_args__ = (
        sa.UniqueConstraint("rule_id", "item_id", name="uq_alert_rule_item"),
        sa.UniqueConstraint("rule_id", "story_url", name="uq_alert_rule_url"),
        sa.UniqueConstraint("rule_id", "story_hash", name="uq_alert_rule_hash"),
    )

    id: str = Field(primary_key=True, max_length=40)
    rule_id: str = Field(index=True, max_length=200)
    item_id: int = Field(foreign_key="item.id", index=True)
    created_at: dt.datetime | None = _ts(index=True)
    rule_name: str = ""
    severity: str = "medium"
    terms: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON))
    snippet: str = ""
    also_reported_by: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON))
    # Every copy of the story after the first: {feed, url, publisher, first_seen}.
    sources: list[dict[str, Any]] = Field(default_factory=list, sa_column=sa.Column(sa.JSON))
    story_url: str | None = Field(default=None, max_length=2000)
    story_hash: str | None = Field(default=None, max_length=64)
    held_back: int = 0  # matches the rule's cooldown dropped between its previous alert and this


class FeedHealth(SQLModel, table=True):
    """One change of a feed's health state (ok, failing, stale), written in the transaction
    that changed the feed row, so that each change is told once: never again after a restart
    (the state is on the row), never lost (its deliveries are in the outbox)."""

    id: str = Field(primary_key=True, max_length=40)
    feed_id: str = Field(index=True, max_length=200)
    created_at: dt.datetime | None = _ts(index=True)
    state: str = Field(max_length=16)
    previous: str = Field(max_length=16)
    since: dt.datetime | None = _ts()  # when the feed entered `state`
    consecutive_errors: int = 0
    last_status: int | None = None
    last_error: str | None = None
    last_success_at: dt.datetime | None = _ts()
    last_new_at: dt.datetime | None = _ts()  # the last poll that found a new item
    feed_url: str = ""
    feed_title: str | None = None


class Delivery(SQLModel, table=True):
    # Either an alert's or a health change's (exactly one of alert_id and health_id is set).
    __table_args__ = (
        sa.UniqueConstraint("alert_id", "channel", name="uq_delivery_alert_ch"),
        sa.UniqueConstraint("health_id", "channel", name="uq_delivery_health_ch"),
    )

    id: int | None = Field(default=None, primary_key=True)
    alert_id: str | None = Field(default=None, foreign_key="alert.id", index=True, max_length=40)
    health_id: str | None = Field(
        default=None, foreign_key="feedhealth.id", index=True, max_length=40
    )
    channel: str = Field(max_length=200)
    status: str = Field(default="pending", index=True, max_length=16)  # pending|sent|dead
    attempts: int = 0
    next_attempt_at: dt.datetime | None = _ts(index=True)
    last_error: str | None = None
    sent_at: dt.datetime | None = _ts()
    digest_id: str | None = Field(default=None, max_length=40, index=True)  # sent in a digest
    claimed_by: str | None = Field(default=None, max_length=100)  # the worker of the attempt


class RuleState(SQLModel, table=True):
    """When each rule (as currently written) became active. A rule alerts only on items first
    seen after that, so adding or editing a rule never alerts on old news, unless the rule
    asks for a backfill window, evaluated once per version of the rule."""

    rule_id: str = Field(primary_key=True, max_length=200)
    fingerprint: str = Field(max_length=64)
    active_since: dt.datetime | None = _ts()
    backfilled: bool = False
    held_back: int = 0  # matches its cooldown dropped since its last alert


# The schema version monitor 0.1.0 kept (1); revision 0002 sets it to 2, so that 0.1.0 refuses
# an upgraded database. Alembic's alembic_version table is the real record since.
schema_version = sa.Table(
    "schema_version", SQLModel.metadata, sa.Column("version", sa.Integer, primary_key=True)
)
