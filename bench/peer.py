"""The peer in bench/poll.py: what 20 lines of aiohttp + feedparser do with the same feeds.

    .venv/bin/python bench/peer.py URLS_FILE [CONCURRENCY]     # prints one JSON line

Fetch every URL (one per line) with one aiohttp ClientSession, at most CONCURRENCY (50) at
once, then feedparser.parse each body with its defaults, in this one process: the baseline a
polling daemon has to beat, or explain why not. Times are wall seconds inside the process.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from pathlib import Path

import aiohttp
import feedparser


async def fetch_all(urls: list[str], concurrency: int) -> list[bytes]:
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:

        async def get(url: str) -> bytes:
            async with sem, session.get(url) as resp:
                return await resp.read()

        return await asyncio.gather(*(get(u) for u in urls))


def main() -> None:
    urls = Path(sys.argv[1]).read_text().split()
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    started = time.perf_counter()
    bodies = asyncio.run(fetch_all(urls, concurrency))
    fetched = time.perf_counter()
    items = sum(len(feedparser.parse(io.BytesIO(b)).entries) for b in bodies)
    done = time.perf_counter()
    out = {"feeds": len(bodies), "items": items, "wall": done - started}
    print(json.dumps(out | {"fetch": fetched - started, "parse": done - fetched}))


if __name__ == "__main__":
    main()
