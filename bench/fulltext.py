"""Full text: what extraction costs and how well it reads pages.

    .venv/bin/python bench/fulltext.py                 # both parts
    .venv/bin/python bench/fulltext.py --rounds 5 --passes 20

1. Extraction on the labelled set (tests/data/pages/: the seed page and 13 pages written in
   the shapes of real news sites, each with its article text). For each candidate: mean word
   precision and recall of the text against NAME.txt, how many pages came out with none of
   their chrome phrases (`absent:` in cases.yaml), and pages/s over --passes passes (CPU of
   this process; one core). Candidates: `ours` (monitor.extract: trafilatura in precision
   mode, table layouts read again, our chrome rules after it), `trafilatura` (its defaults,
   text only), `readability` (readability-lxml's summary, as text), and `readability+rules`
   (readability with our same chrome rules after it, the fair comparison of the two cores).
   Ours also: publisher and time right, against cases.yaml.
2. The cost added to a poll cycle: one 50-item teaser feed (one sentence per item, each
   linking to a page of the labelled set) on a local server in its own process, polled by
   monitor's own pipeline in this process (the worker pool as the daemon has it, a fresh
   SQLite database per cycle, backfill so that the first poll matches and alerts). Cycles
   alternate without and with `full_text: true` (--rounds of each); printed: the mean wall
   and CPU (this process and its workers) of each, and their ratio. Pages go at per_host 2,
   as the default configuration fetches them from one site.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import multiprocessing
import os
import re
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from harness import ROOT, cpu, machine, stop_on_sigterm, tree
from ruamel.yaml import YAML

from monitor import pipeline, scheduler
from monitor.config import load_config
from monitor.extract import chrome_rules, extract_article
from monitor.jobs import read_page
from monitor.models import ItemData
from monitor.workers import Shared

PAGES = ROOT / "tests" / "data" / "pages"
CASES: list[dict[str, Any]] = YAML(typ="safe").load((PAGES / "cases.yaml").read_text("utf-8"))


# --- 1. extraction on the labelled set -------------------------------------------------------


def words(text: str) -> collections.Counter[str]:
    return collections.Counter(re.findall(r"\w+", text.lower()))


def precision_recall(got: str, want: str) -> tuple[float, float]:
    g, w = words(got), words(want)
    common = sum((g & w).values())
    return common / max(1, sum(g.values())), common / max(1, sum(w.values()))


def ours(html: bytes) -> str:
    return extract_article(html, url=None, content_type="text/html").text


def trafilatura_default(html: bytes) -> str:
    import trafilatura

    return trafilatura.extract(html) or ""


def readability(html: bytes) -> str:
    from readability import Document
    from selectolax.lexbor import LexborHTMLParser

    summary = Document(html.decode("utf-8", "replace")).summary(html_partial=True)
    return LexborHTMLParser(summary).text(separator="\n")


def readability_rules(html: bytes) -> str:
    from readability import Document

    doc = Document(html.decode("utf-8", "replace"))
    return chrome_rules(readability(html), doc.short_title()).text


CANDIDATES: dict[str, Callable[[bytes], str]] = {
    "ours": ours,
    "trafilatura": trafilatura_default,
    "readability": readability,
    "readability+rules": readability_rules,
}


def utc(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    value = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def extraction(passes: int) -> None:
    pages = [((PAGES / f"{c['name']}.html").read_bytes(), c) for c in CASES]
    wants = {c["name"]: (PAGES / f"{c['name']}.txt").read_text() for c in CASES}
    print(f"1. extraction, {len(pages)} labelled pages ({machine()})")
    for name, fn in CANDIDATES.items():
        try:
            fn(pages[0][0])
        except ImportError as exc:
            print(f"  {name:18} skipped: {exc} (pip install readability-lxml)")
            continue
        ps, rs, clean, worst = [], [], 0, []
        for html, case in pages:
            text = fn(html)
            p, r = precision_recall(text, wants[case["name"]])
            ps.append(p)
            rs.append(r)
            dirty = [a for a in case["absent"] if a.lower() in text.lower()]
            clean += not dirty
            if p < 0.95 or r < 0.95 or dirty:
                worst.append(f"{case['name']} P={p:.2f} R={r:.2f}{' chrome' if dirty else ''}")
        started = time.process_time()
        for _ in range(passes):
            for html, _case in pages:
                fn(html)
        rate = passes * len(pages) / (time.process_time() - started)
        print(
            f"  {name:18} precision {statistics.mean(ps):.3f}  recall {statistics.mean(rs):.3f}"
            f"  chrome-free {clean}/{len(pages)}  {rate:,.0f} pages/s"
        )
        if worst:
            print(f"  {'':18} below 0.95 or with chrome: {'; '.join(worst)}")
    right = {"publisher": 0, "time": 0}
    for html, case in pages:
        article = extract_article(html, url=None, content_type="text/html")
        right["publisher"] += article.publisher == case["source"]
        right["time"] += article.published_at == utc(case["published_at"])
    print(
        f"  ours: publisher right on {right['publisher']}/{len(pages)} pages, "
        f"time on {right['time']}/{len(pages)}"
    )
    sizes = [len(h) for h, _ in pages]
    print(f"  (pages of {min(sizes) / 1000:.1f}-{max(sizes) / 1000:.1f} kB)")
    # Real pages are larger: the same pages with a site's usual bulk added (a menu of 150
    # links, 60 related stories, 80 comments, inline scripts), about 60-70 kB each.
    bulk = (
        "<nav><ul>" + "".join(f"<li><a href='/s/{i}'>Section {i}</a></li>" for i in range(150))
        + "</ul></nav><aside><ul>"
        + "".join(f"<li><a href='/r/{i}'>Related story number {i} on the region</a></li>"
                  for i in range(60))
        + "</ul></aside><section class='comments'>"
        + "".join(f"<div class='comment'><p>Reader {i} says this is a comment of some length "
                  "about the story and the politics around it.</p></div>" for i in range(80))
        + "</section><script>" + "var x = 1;" * 2000 + "</script>"
    ).encode()  # fmt: skip
    padded = [h.replace(b"</body>", bulk + b"</body>") for h, _ in pages]
    for name in ("ours", "readability+rules"):
        fn = CANDIDATES[name]
        try:
            fn(padded[0])
        except ImportError:
            continue
        started = time.process_time()
        for _ in range(max(1, passes // 4)):
            for html in padded:
                fn(html)
        rate = max(1, passes // 4) * len(padded) / (time.process_time() - started)
        print(f"  {name:18} {rate:,.0f} pages/s on pages of ~{len(padded[0]) // 1000} kB")


# --- 2. the cost added to a poll cycle -------------------------------------------------------

ITEMS = 50


def _serve(port_out: Any) -> None:
    pages = [(PAGES / f"{c['name']}.html").read_bytes() for c in CASES]
    titles = [c["name"].replace("_", " ") for c in CASES]
    feed_items = "".join(
        f"<item><title>Story {n}: {titles[n % len(titles)]}</title>"
        f"<link>http://127.0.0.1:PORT/page/{n}</link><guid>story-{n}</guid>"
        f"<description>One sentence about story {n}.</description></item>"
        for n in range(ITEMS)
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes: without this, Nagle's algorithm and the
            # client's delayed ACK add 40 ms to every response (the server's, not monitor's)
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            port = self.server.server_address[1]
            if self.path == "/teasers.xml":
                body = (
                    '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
                    f"<link>http://x/</link><description>d</description>{feed_items}"
                    "</channel></rss>"
                ).replace("PORT", str(port))
                data, kind = body.encode(), "application/rss+xml"
            elif self.path.startswith("/page/"):
                n = int(self.path.rsplit("/", 1)[1])
                data, kind = pages[n % len(pages)], "text/html; charset=utf-8"
            else:
                data, kind = b"", "text/plain"
                self.send_response(404)
            if data:
                self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    port_out.send(httpd.server_address[1])
    httpd.serve_forever()


def _config(folder: Path, port: int, full_text: bool, n: int) -> Path:
    path = folder / f"monitor-{n}.yaml"
    path.write_text(
        f"""database: sqlite:///{folder}/cycle-{n}.db
watchlist: {ROOT / "config" / "watchlist.yaml"}
poll: {{allow_private_networks: true, per_host: 2, jitter: 0s}}
server: {{listen: 127.0.0.1:0}}
channels: {{console: {{type: log}}}}
feeds:
  - {{id: teasers, url: "http://127.0.0.1:{port}/teasers.xml", backfill: true,
      full_text: {str(full_text).lower()}}}
"""
    )
    return path


async def _cycle(path: Path) -> tuple[float, float, dict[str, int]]:
    config = load_config(path)
    runtime = scheduler.build(config.settings, config.watchlist)
    try:
        await runtime.start_workers()
        await _warm(runtime)
        pids = tree(os.getpid())
        cpu0, t0 = cpu(pids), time.perf_counter()
        report = await pipeline.poll(runtime.ctx, everything=True)
        wall, used = time.perf_counter() - t0, cpu(pids) - cpu0
    finally:
        await runtime.aclose()
    (outcome,) = report.feeds
    assert outcome.ok and outcome.new == ITEMS, outcome
    return wall, used, outcome.pages


async def _warm(runtime: scheduler.Runtime) -> None:
    """A running daemon's workers hold the watchlist and have read pages before: one page
    read in each worker first (in both modes), so that a cycle measures the steady state,
    not a new pool's first call (shipping the watchlist, trafilatura's lazy set-up)."""
    pool, watchlist = runtime.ctx.workers, runtime.ctx.watchlist()
    assert pool is not None
    item = ItemData("warm", "warm", "http://127.0.0.1/warm", "Warm-up")
    page = (PAGES / "wire_service.html").read_bytes()
    shared = Shared("watchlist", watchlist.version, watchlist)
    await asyncio.gather(
        *(
            pool.run(
                read_page,
                item,
                body=page,
                url=None,
                content_type="text/html",
                feed_tags=(),
                watchlist=shared,
            )
            for _ in range(pool.size)
        )
    )


def cycle_cost(rounds: int) -> None:
    import logging

    logging.disable(logging.INFO)
    recv, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.get_context("fork").Process(target=_serve, args=(send,), daemon=True)
    server.start()
    port = recv.recv()
    print(f"\n2. a poll cycle of a {ITEMS}-item teaser feed, {rounds} rounds ({machine()})")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            pages: dict[str, int] = {}
            for r in range(rounds):
                for full in (False, True):
                    wall, used, got = asyncio.run(
                        _cycle(_config(Path(tmp), port, full, 2 * r + full))
                    )
                    runs[full].append((wall, used))
                    if full:
                        pages = got
            for full in (False, True):
                walls = [w for w, _ in runs[full]]
                cpus = [c for _, c in runs[full]]
                label = "full_text: true " if full else "full_text: false"
                print(
                    f"  {label}  wall {statistics.mean(walls) * 1000:7.0f} ms "
                    f"(min {min(walls) * 1000:.0f})  CPU {statistics.mean(cpus) * 1000:7.0f} ms"
                )
            plain_w = statistics.mean(w for w, _ in runs[False])
            full_w = statistics.mean(w for w, _ in runs[True])
            plain_c = statistics.mean(c for _, c in runs[False])
            full_c = statistics.mean(c for _, c in runs[True])
            print(
                f"  ratio full/plain: wall {full_w / plain_w:.1f}x, CPU {full_c / plain_c:.1f}x; "
                f"added per page: wall {(full_w - plain_w) / ITEMS * 1000:.1f} ms, "
                f"CPU {(full_c - plain_c) / ITEMS * 1000:.1f} ms; pages: {pages}"
            )
    finally:
        server.kill()


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=20, help="passes over the set, for pages/s")
    parser.add_argument("--rounds", type=int, default=3, help="cycles of each kind")
    parser.add_argument("--only", choices=["extraction", "cycle"], default=None)
    args = parser.parse_args()
    if args.only != "cycle":
        extraction(args.passes)
    if args.only != "extraction":
        cycle_cost(args.rounds)


if __name__ == "__main__":
    main()
