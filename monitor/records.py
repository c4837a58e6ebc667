"""The plain value types the stages pass to each other: frozen dataclasses, never ORM rows,
so that parse, rules and alert do not depend on the database. Nothing here imports SQLAlchemy:
the parse workers use these and nothing of the store (a worker without SQLAlchemy, SQLModel
and the tables is about 25 MB smaller and starts sooner). monitor.models re-exports them.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, TypeVar

UTC = dt.UTC
T = TypeVar("T")


def pickled_by_fields(cls: type[T]) -> type[T]:
    """`cls` (a dataclass) pickled as its constructor's arguments, its fields in order.

    What the parse workers send the daemon is these (a feed's parse: its items, their hits
    and sketches), and a frozen dataclass's own way is a setstate that asks `fields()` each
    time, on both sides: 11,700 calls a cycle on the daemon's loop alone. Per item of a bench
    feed's reply, 6.1 -> 3.9 us to write and 6.4 -> 5.6 to read."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    values = attrgetter(*names)
    one = len(names) == 1

    def __reduce__(self: T) -> tuple[Any, ...]:
        return (cls, (values(self),) if one else values(self))

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ItemData:
    """One normalized feed entry, as parse produces it and rules/alert consume it.

    Text fields are plain text (no HTML). `guid` is the identity within the feed (see
    docs/design.md, "Item identity"). `published_at` is aware UTC or None (store fills in
    first_seen_at then).
    """

    feed_id: str
    guid: str
    url: str | None
    title: str
    summary: str = ""
    content: str = ""
    author: str | None = None
    categories: tuple[str, ...] = ()
    source: str | None = None
    language: str | None = None
    published_at: dt.datetime | None = None
    content_hash: str = ""  # of the feed's text, never the page's: the next poll compares it
    page_status: str | None = None  # full text: "ok", "failed", None (not asked for)
    page_error: str | None = None  # why the page's text is not the content


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Hit:
    """Why a rule matched an item: the normalized terms found and a snippet with «marks»."""

    rule_id: str
    terms: tuple[str, ...]
    snippet: str


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """Everything a channel needs to render and send one alert (no database access)."""

    id: str
    created_at: dt.datetime
    rule_id: str
    rule_name: str
    severity: str
    title: str
    url: str | None
    source: str | None
    feed: str
    published_at: dt.datetime | None
    summary: str
    terms: tuple[str, ...]
    snippet: str
    also_reported_by: tuple[str, ...] = field(default_factory=tuple)
    held_back: int = 0  # matches the rule's cooldown held back since its previous alert


@dataclass(frozen=True, slots=True)
class HealthMessage:
    """A change of a feed's health state, as every channel renders it (no database access)."""

    id: str
    created_at: dt.datetime
    state: str  # ok | failing | stale
    previous: str
    feed: str
    feed_url: str
    feed_title: str | None
    since: dt.datetime | None
    consecutive_errors: int
    last_status: int | None
    last_error: str | None
    last_success_at: dt.datetime | None
    last_new_at: dt.datetime | None = None


# --- what a parse worker sends back (workers.py) ----------------------------------------
# Defined here, not beside the code that makes them, so that unpickling a reply imports none
# of the parse code (feedparser, lexbor, numpy) into the daemon's process.


_SKETCH_VERSION = 2  # of Sketch.dumps' layout (story_member.sketch)
_SKETCH_HEAD = struct.Struct("<BHBHBB")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Sketch:
    """What story identity keeps of an item: `bands` to find candidates, the rest to judge."""

    bands: tuple[str, ...]  # "07:3fa9c2d41b0e": band index, 48 bits of the band's values
    sig: tuple[int, ...] = ()  # PERMS MinHash values of the body, low 16 bits
    lead_sig: tuple[int, ...] = ()  # LEAD_PERMS values of the body's first LEAD_SHINGLES
    size: int = 0  # distinct body shingles
    title: frozenset[int] = frozenset()  # folded title words, 32-bit hashes
    facts: tuple[int, ...] = ()  # numbers, dates, names of title and body, in order (16 bits)

    def dumps(self) -> bytes:
        """Everything `same_story` needs (the bands are stored apart, as keys)."""
        head = _SKETCH_HEAD.pack(
            _SKETCH_VERSION, len(self.sig), len(self.lead_sig), min(self.size, 65535),
            len(self.title), len(self.facts),
        )  # fmt: skip
        return b"".join(
            (
                head,
                struct.pack(f"<{len(self.sig)}H", *self.sig),
                struct.pack(f"<{len(self.lead_sig)}H", *self.lead_sig),
                struct.pack(f"<{len(self.title)}I", *sorted(self.title)),
                struct.pack(f"<{len(self.facts)}H", *self.facts),
            )
        )

    @classmethod
    def loads(cls, data: bytes) -> Sketch:
        version, n_sig, n_lead_sig, size, n_title, n_facts = _SKETCH_HEAD.unpack_from(data)
        if version != _SKETCH_VERSION:
            raise ValueError(f"sketch version {version}, expected {_SKETCH_VERSION}")
        at = _SKETCH_HEAD.size
        sig = struct.unpack_from(f"<{n_sig}H", data, at)
        at += 2 * n_sig
        lead_sig = struct.unpack_from(f"<{n_lead_sig}H", data, at)
        at += 2 * n_lead_sig
        title = frozenset(struct.unpack_from(f"<{n_title}I", data, at))
        at += 4 * n_title
        facts = struct.unpack_from(f"<{n_facts}H", data, at)
        return cls((), tuple(sig), tuple(lead_sig), size, title, tuple(facts))


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    items: list[ItemData]
    bozo: str | None  # feedparser's bozo exception as a short message, or None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Article:
    text: str  # plain text, one paragraph a line
    title: str | None = None
    publisher: str | None = None
    published_at: dt.datetime | None = None  # aware UTC


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ParsedAndMatched:
    parsed: ParsedFeed
    hits: dict[str, list[Hit]]  # by guid, items with hits only; a guid listed twice: its last
    watchlist: str  # the version that matched
    sketches: dict[str, Sketch | None]  # by guid, items with hits: the story step's sketch


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class PageRead:
    article: Article  # what the page says (cached by the daemon for other items of its URL)
    item: ItemData  # the item with the article as its content
    hits: list[Hit]
    watchlist: str  # the version that matched
    sketch: Sketch | None = None  # of the item with its article, when it has hits
