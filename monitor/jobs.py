"""What the worker processes run for polling: a feed's parse, the matching of its items
against the watchlist in force, and their sketches for the story step (folding.py), so
that the daemon's own process (fetching, the one writer) does not fold, tokenize and
shingle every item on the core it shares with them.

Every item is matched here, new or not (which are new is the store's to say, later, in the
daemon); the writer keeps the hits of the new and changed ones and ignores the rest. The
hits say which watchlist version made them: if the rules changed in between, the writer
matches again with the rules then in force.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from monitor.models import Hit
from monitor.parse import ParsedFeed, parse_feed
from monitor.rules import Watchlist
from monitor.stories import Sketch, item_sketch


@dataclass(frozen=True, slots=True)
class ParsedAndMatched:
    parsed: ParsedFeed
    hits: dict[str, list[Hit]]  # by guid, items with hits only; a guid listed twice: its last
    watchlist: str  # the version that matched
    sketches: dict[str, Sketch | None]  # by guid, items with hits: the story step's sketch


def parse_and_match(
    body: bytes,
    *,
    feed_id: str,
    base_url: str | None,
    fetched_at: dt.datetime,
    feed_tags: Collection[str],
    watchlist: Watchlist,
) -> ParsedAndMatched:
    parsed = parse_feed(body, feed_id=feed_id, base_url=base_url, fetched_at=fetched_at)
    hits = {item.guid: watchlist.match(item, feed_tags) for item in parsed.items}
    # Only the items some rule matched can alert: only they need a story (folding.py).
    sketches = {item.guid: item_sketch(item) for item in parsed.items if hits[item.guid]}
    return ParsedAndMatched(
        parsed, {g: h for g, h in hits.items() if h}, watchlist.version, sketches
    )
