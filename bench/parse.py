"""Parse throughput: bare feedparser against our parse_feed, on the whole corpus.

    .venv/bin/python bench/parse.py [N]      # N passes over the corpus (default 5)

Prints entries/s for (a) feedparser.parse with its defaults, (b) feedparser.parse as we call
it (sanitize_html=False, resolve_relative_uris=False), (c) monitor.parse.parse_feed, (d) the
same through the daemon's worker pool (one process per core, the items pickled back as the
daemon gets them), and the ratios against feedparser. Absolute numbers depend on the machine;
on these shared machines only the ratio is worth comparing between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor import feedguard, feedtune  # noqa: E402
from monitor.errors import ParseError  # noqa: E402
from monitor.parse import parse_feed  # noqa: E402
from monitor.workers import WorkerPool  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "corpus"
FETCHED_AT = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
BASE = "https://feeds.example.org/feed.xml"


@contextlib.contextmanager
def as_shipped() -> Iterator[None]:
    """feedparser without our patches (feedguard's bounds, feedtune's drop-ins), for the
    baselines: they measure feedparser itself."""
    feedtune.uninstall()
    feedguard.unharden_feedparser()
    try:
        yield
    finally:
        feedguard.harden_feedparser()
        feedtune.install()


def feedparser_default(body: bytes) -> int:
    return len(feedparser.parse(io.BytesIO(body)).entries)


def feedparser_as_we_call_it(body: bytes) -> int:
    parsed = feedparser.parse(io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False)
    return len(parsed.entries)


def ours(body: bytes) -> int:
    # Rates are computed over feedparser's entry count, so all three share one denominator.
    with contextlib.suppress(ParseError):
        return len(parse_feed(body, feed_id="b", base_url=BASE, fetched_at=FETCHED_AT).items)
    return 0


def one_pass(fn: Callable[[bytes], int], bodies: list[bytes], *, baseline: bool = False) -> float:
    """One pass; a baseline pass runs feedparser as shipped."""
    with as_shipped() if baseline else contextlib.nullcontext():
        started = time.perf_counter()
        for body in bodies:
            fn(body)
        return time.perf_counter() - started


class Pool:
    """The daemon's worker pool, one pass over the corpus at a time."""

    def __init__(self, bodies: list[bytes], size: int) -> None:
        self.bodies = bodies
        self.loop = asyncio.new_event_loop()
        self.pool = WorkerPool(size, cpu_seconds=60)
        self.loop.run_until_complete(self.pool.start())

    async def _one(self, body: bytes) -> None:
        with contextlib.suppress(ParseError):
            await self.pool.run(parse_feed, body, feed_id="b", base_url=BASE, fetched_at=FETCHED_AT)

    async def _all(self) -> None:
        await asyncio.gather(*(self._one(b) for b in self.bodies))

    def one_pass(self) -> float:
        started = time.perf_counter()
        self.loop.run_until_complete(self._all())
        return time.perf_counter() - started

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.close())
        self.loop.close()


def main() -> None:
    passes = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    bodies = [p.read_bytes() for p in sorted(CORPUS.glob("*.xml"))]
    with as_shipped():
        entries = sum(feedparser_default(b) for b in bodies)
    print(f"{len(bodies)} feeds, {entries} entries, best of {passes} passes, the paths in turn")
    cores = os.cpu_count() or 1
    pool = Pool(bodies, cores)
    paths: dict[str, Callable[[], float]] = {
        "default": lambda: one_pass(feedparser_default, bodies, baseline=True),
        "bare": lambda: one_pass(feedparser_as_we_call_it, bodies, baseline=True),
        "ours": lambda: one_pass(ours, bodies),
        "pool": pool.one_pass,
    }
    best = dict.fromkeys(paths, float("inf"))
    try:
        for path in paths.values():
            path()  # warm-up (imports, regex compilation, the workers' first jobs)
        # The paths take turns within each pass, so that the machine's drift (these machines
        # are shared) falls on all of them alike; the best pass of each counts.
        for _ in range(passes):
            for name, path in paths.items():
                best[name] = min(best[name], path())
    finally:
        pool.close()
    default, bare, mine, pooled = (entries / best[k] for k in ("default", "bare", "ours", "pool"))
    print(f"feedparser.parse (defaults):            {default:8.0f} entries/s")
    print(f"feedparser.parse (no sanitize/resolve): {bare:8.0f} entries/s")
    print(f"monitor.parse.parse_feed:               {mine:8.0f} entries/s")
    print(f"the same in the worker pool ({cores} proc.): {pooled:8.0f} entries/s")
    print(f"ratio ours / feedparser defaults:       {mine / default:8.2f}")
    print(f"ratio ours with the pool / feedparser defaults: {pooled / default:.2f}")
    print(f"ratio ours / feedparser as we call it:  {mine / bare:8.2f}")


if __name__ == "__main__":
    main()
