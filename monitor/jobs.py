"""What the worker processes run for polling: a feed's parse, the matching of its items
against the watchlist in force, and the sketches of the matched ones for the story step
(folding.py); full text: an item's page read (extract.py) and the item matched again with
the page's article as its content. So the daemon's own process (fetching, the one writer)
does not fold, tokenize and shingle every item on the core it shares with them, and a
hostile page, like a hostile feed, meets the workers' CPU and memory limits.

Every item is matched here, new or not (which are new is the store's to say, later, in the
daemon); the writer keeps the hits of the new and changed ones and ignores the rest. The
hits say which watchlist version made them: if the rules changed in between, the writer
matches again with the rules then in force.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import replace

from monitor.extract import extract_article
from monitor.parse import parse_feed
from monitor.records import Article, ItemData, PageRead, ParsedAndMatched
from monitor.rules import Watchlist
from monitor.stories import item_sketch


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


def read_page(
    item: ItemData,
    *,
    body: bytes | None,
    url: str | None,
    content_type: str | None,
    article: Article | None = None,
    feed_tags: Collection[str],
    watchlist: Watchlist,
) -> PageRead:
    """An item's page (`body`; or an `article` read before from the same URL) made its
    content, and the item matched. ExtractError when the page has no article."""
    if article is None:
        article = extract_article(body or b"", url=url, content_type=content_type)
    full = with_article(item, article)
    hits = watchlist.match(full, feed_tags)
    return PageRead(article, full, hits, watchlist.version, item_sketch(full) if hits else None)


def with_article(item: ItemData, article: Article) -> ItemData:
    """The page's article is the content; its publisher and time fill `source` and
    `published_at` when the feed gave none. The content hash stays the feed's: the next poll
    compares the feed's text with it, and the page's text would make every item "changed"."""
    return replace(
        item,
        content=article.text,
        source=item.source or article.publisher,
        published_at=item.published_at or article.published_at,
        page_status="ok",
        page_error=None,
    )
