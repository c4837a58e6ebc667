"""Full text, polling's step between parse and store: the linked pages of a poll's new items
and of those whose text changed (never an unchanged one), fetched with the feeds' Fetcher
and read in the worker processes. The pipeline calls `read_pages`; it gives back the items
to store, each with its page's article as content, or as the feed gave it with the reason
(`page_error`), never held back.

- **Which feeds**: `full_text: true`, or `auto` when the feed's items are teasers
  (`are_teasers`: at least half of the items with a link have under TEASER_WORDS words of
  text), judged on every poll from what the feed serves now.
- **Politeness**: the Fetcher's bounds (deadline, body cap, at most 5 redirects, the
  private-network guard on every hop) and its per-host slots; on top, one poll runs at most
  `per_host` page fetches per host at once, so 50 items of one site never hold 50 of the
  fetcher's global slots while they wait for that host's two.
- **A budget**: a poll's pages get the fetch deadline in all (`budget`); what is not read by
  then keeps the feed's text ("deadline"), so a slow site delays a feed once, boundedly.
- **Cache by canonical URL** (`PageCache`, in this process): a story linked from several
  feeds is fetched and extracted once; two polls wanting it at once share one fetch.
- A body over the cap is cut there, not refused (the article is near the top).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import structlog

from monitor.errors import ExtractError, FetchError
from monitor.fetch import Fetcher, host_of
from monitor.models import Hit, ItemData
from monitor.records import Article, PageRead, Sketch
from monitor.workers import ByName, WorkerFailed

log = structlog.get_logger("monitor.fulltext")
_READ_PAGE = ByName("monitor.jobs", "read_page")  # imported by the worker (workers.ByName)

TEASER_WORDS = 50  # an item with less text than this is a teaser (a title and a sentence or two)
CACHE_ENTRIES = 2_000  # articles kept by URL (a few MB)

# A job runner: the worker pool's `run`, or a thread (tests, tools). Shared arguments
# (the watchlist) are the runner's business.
Runner = Callable[..., Awaitable[Any]]


def wanted(mode: bool | str, items: Sequence[ItemData]) -> bool:
    """Does a feed with this `full_text` setting want its items' pages?"""
    if mode == "auto":
        return are_teasers(items)
    return mode is True


def are_teasers(items: Sequence[ItemData]) -> bool:
    """The `auto` rule: at least half of the items that link somewhere carry fewer than
    TEASER_WORDS words (of summary or content, the longer). A feed of headlines and a
    sentence is a teaser feed; one that carries whole stories is not."""
    linked = [it for it in items if it.url]
    if not linked:
        return False
    short = sum(
        1 for it in linked if max(len(it.summary.split()), len(it.content.split())) < TEASER_WORDS
    )
    return 2 * short >= len(linked)


class PageCache:
    """Articles by canonical URL, least recently used out first, and the reads in flight."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self.entries = entries
        self._done: OrderedDict[str, Article] = OrderedDict()
        self.inflight: dict[str, asyncio.Future[None]] = {}

    def get(self, url: str) -> Article | None:
        article = self._done.get(url)
        if article is not None:
            self._done.move_to_end(url)
        return article

    def put(self, url: str, article: Article) -> None:
        self._done[url] = article
        self._done.move_to_end(url)
        while len(self._done) > self.entries:
            self._done.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Pages:
    """What the step needs: the fetcher, how to run a job in a worker, the cache."""

    fetcher: Fetcher
    run: Runner
    cache: PageCache


@dataclass(frozen=True, slots=True)
class PagesDone:
    items: dict[str, ItemData]  # by guid: the new items, with their page or its failure
    hits: dict[str, list[Hit]]  # by guid: the hits of the items read with their page
    watchlist: str | None  # the version that matched them (None: no page read; "": several)
    results: dict[str, int]  # "ok", "cached", or why not, with counts
    sketches: dict[str, Sketch | None] = field(default_factory=dict)  # those with hits


async def read_pages(
    pages: Pages,
    items: Sequence[ItemData],
    *,
    feed_tags: Sequence[str],
    watchlist: Any,
    budget: float,
    pages_dir: str | None = None,
    feed_id: str = "",
    fresh: Collection[str] = (),
) -> PagesDone:
    """Each item's page, at most `per_host` at once per host, within `budget` seconds.
    `fresh`: guids whose page is fetched again even when cached (an edited story)."""
    results: Counter[str] = Counter()
    out: dict[str, ItemData] = {}
    hits: dict[str, list[Hit]] = {}
    sketches: dict[str, Sketch | None] = {}
    version: list[str] = []
    queues: defaultdict[str, list[ItemData]] = defaultdict(list)
    for item in items:
        if not item.url:
            continue
        queues["local" if pages_dir else host_of(item.url)].append(item)

    async def one(item: ItemData) -> None:
        assert item.url is not None
        try:
            read, how = await _read(
                pages, item, item.url, feed_tags, watchlist, pages_dir, item.guid in fresh
            )
        except (FetchError, ExtractError, WorkerFailed) as exc:
            why = exc.reason if isinstance(exc, WorkerFailed) else str(exc)
            out[item.guid] = _failed(item, type(exc).__name__, why)
            results[type(exc).__name__] += 1
            log.info("page_failed", feed=feed_id, url=item.url, kind=type(exc).__name__, error=why)
            return
        except Exception as exc:  # a bug, or a library's surprise: this item's, not the poll's
            log.exception("page_crashed", feed=feed_id, url=item.url)
            out[item.guid] = _failed(item, type(exc).__name__, str(exc) or "crashed")
            results["error"] += 1
            return
        out[item.guid], hits[item.guid] = read.item, read.hits
        if read.hits:
            sketches[item.guid] = read.sketch
        version.append(read.watchlist)
        results[how] += 1

    async def lane(queue: list[ItemData]) -> None:
        while queue:
            await one(queue.pop(0))

    per_host = pages.fetcher.limits.per_host
    lanes = [
        asyncio.create_task(lane(q)) for q in queues.values() for _ in range(min(per_host, len(q)))
    ]
    started = time.monotonic()
    try:
        if lanes:
            await asyncio.wait(lanes, timeout=budget)
    finally:  # the budget ran out, or the poll was cancelled: no page fetch outlives it
        late = [t for t in lanes if not t.done()]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    for item in items:  # not yet finished when the budget ran out, or without a link
        if item.guid not in out and item.url:
            out[item.guid] = _failed(item, "deadline", f"page not read within {budget:g}s")
            results["deadline"] += 1
    if items:
        log.info(
            "pages_read",
            feed=feed_id,
            items=len(items),
            took=round(time.monotonic() - started, 3),
            **{k: v for k, v in results.items()},
        )
    # Items matched under different watchlist versions (a reload mid-poll): "" says so, and
    # the writer matches them all again with the rules then in force.
    kinds = set(version)
    matched_by = None if not kinds else (version[0] if len(kinds) == 1 else "")
    return PagesDone(out, hits, matched_by, dict(results), sketches)


async def _read(
    pages: Pages,
    item: ItemData,
    url: str,
    feed_tags: Sequence[str],
    watchlist: Any,
    pages_dir: str | None,
    fresh: bool,
) -> tuple[PageRead, str]:
    cache = pages.cache
    while (pending := cache.inflight.get(url)) is not None:
        await asyncio.shield(pending)  # another poll is reading this URL: wait for it
    article = None if fresh else cache.get(url)
    if article is not None:
        job = await pages.run(
            _READ_PAGE, item, body=None, url=url, content_type=None, article=article,
            feed_tags=feed_tags, watchlist=watchlist,
        )  # fmt: skip
        return job, "cached"
    marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cache.inflight[url] = marker
    try:
        where = _local(pages_dir, url) if pages_dir else url
        result = await pages.fetcher.fetch(where, cut=True)
        if result.truncated:
            log.info("page_cut", url=url, at=len(result.body or b""))
        job = await pages.run(
            _READ_PAGE, item, body=result.body, url=result.url if not pages_dir else url,
            content_type=result.content_type, feed_tags=feed_tags, watchlist=watchlist,
        )  # fmt: skip
        cache.put(url, job.article)
        return job, "ok"
    finally:
        del cache.inflight[url]
        marker.set_result(None)


def _local(pages_dir: str, url: str) -> str:
    """The file for a URL in a configured pages directory: the last part of its path."""
    name = PurePosixPath(urlsplit(url).path).name
    if not name or name.startswith("."):
        raise FetchError(f"no file for {url} in {pages_dir}")
    return str(Path(pages_dir) / name)


def _failed(item: ItemData, kind: str, why: str) -> ItemData:
    return replace(item, page_status="failed", page_error=f"{kind}: {why}"[:500])
