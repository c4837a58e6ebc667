"""A fast local feed server for the polling benches, in its own process.

    .venv/bin/python bench/feedserver.py --feeds 2000 --port 0 --ports 4
    .venv/bin/python bench/feedserver.py --ceiling       # measure this server's own ceiling

Why its own process, and why so lean: the benches compare monitor's polling with a peer
script, so the server must cost next to nothing beside them. It is an asyncio.Protocol over a
table of response bytes rendered once at start; a request is a header scan, two dict looks
and one write. Ceiling, measured with `--ceiling` (bare keep-alive clients, 50 connections
each, gzip accepted, 2,000 feeds x 5 passes; 2-core shared machine, 2026-12-01):

    load 0.7, 1 client process:   200s 24,600 req/s (162 MB/s gzipped), 304s 46,300 req/s
    load 0.7, 2 client processes: 200s 34,700 req/s, 304s 49,300 req/s (cores are the limit)
    load 3.9, 1 client process:   200s 19,100 req/s, 304s 31,600 req/s
    server CPU: 15-21 µs per 200, 9-19 µs per 304, i.e. under 0.05 s per 2,000-feed cycle

The fastest real client here, the peer's aiohttp, fetches the 2,000 feeds in 0.4 s (~4,800
req/s): the server has 4-7x headroom over it and 100x over monitor (30-250 feeds/s); in
bench/poll.py it used 0.6-0.8 CPU-s over our two cycles (about 1% of their wall, most of it
connection set-up and the /stats calls).

What it serves (127.0.0.1 only):
  GET /feed/<n>.xml  n in 0..feeds-1, on port ports[n % K] only (404 elsewhere): about 20
                     items (RSS 2.0, every fifth feed Atom 1.0), with ETag and Last-Modified,
                     304 on a matching If-None-Match (which takes precedence, as RFC 9110
                     says) or If-Modified-Since, gzip when Accept-Encoding allows it (its own
                     ETag, Vary: Accept-Encoding), keep-alive (HTTP/1.1, or 1.0 when asked).
  GET /stats         JSON counters since the last reset: by status, per path, per User-Agent
                     (requests, statuses, distinct paths, first and last request time), the
                     paths fetched more than once and by whom, the time every feed had been
                     fetched at least once, and the server's CPU seconds. `?brief=1` leaves
                     out the per-path table (for tight polling loops).
  GET /reset         zero the counters.
Once listening it prints one line, `READY {json}` (ports, feeds, items, build seconds, pid).
With --port 0 the K ports are still consecutive (base, base+1, ...), so feed n is on
base + (n % K) either way.

The items: text from the shared corpus (/work/shared/corpus/feeds/*.xml, parsed once with
feedparser), but every item is its own story, so that no two feeds (and no two items) carry
the same one: monitor folds copies of a story (same canonical URL, same text) into one alert,
and a bench made of copies would measure that shortcut, not polling. Each item gets a unique
guid and link, a headline made of the first half of one corpus headline and the second half
of another (each pair used once), and a summary of corpus sentences drawn for it alone, as
long as the summary of the corpus item it takes its author and categories from (120 to 600
characters, in <p> paragraphs). The assignment is a fixed function of (feed, position), so
every run serves the same text; only the dates follow the start time (items from the last
days, so no retention window drops them). A third of the links carry utm_ parameters, as real
feeds do.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import email.utils
import gzip
import hashlib
import html
import json
import multiprocessing as mp
import os
import random
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

CORPUS = Path("/work/shared/corpus/feeds")
ITEMS_PER_FEED = 20
SEED = 20261201
HOST = "127.0.0.1"


# --- the corpus and the stories made from it ---------------------------------------------------

_TAG = re.compile(r"<[^>]+>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
_SLUG = re.compile(r"[^a-z0-9]+")


def _text(fragment: str) -> str:
    """Plain text of an HTML fragment; twice, as descriptions are often HTML escaped twice."""
    for _ in range(2):
        fragment = html.unescape(_TAG.sub(" ", fragment))
    return " ".join(fragment.split())


_STOPWORDS_TEXT = (
    "the of to and in a is for on with that as by at from was has have are it its after "
    "said says will be an this over amid"
)
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_WORD = re.compile(r"[^\W\d_]+")


def is_english(text: str) -> bool:
    """A rough test, enough to keep headlines and sentences of one language together."""
    words = _WORD.findall(text.lower())
    if not words:
        return False
    ascii_words = sum(w.isascii() for w in words)
    stop = sum(w in _STOPWORDS for w in words)
    return ascii_words >= 0.9 * len(words) and stop >= max(1, 0.08 * len(words))


@dataclass(frozen=True, slots=True)
class Source:
    """What a generated item borrows from one corpus entry besides the text."""

    host: str
    author: str
    tags: tuple[str, ...]
    summary_chars: int


@dataclass
class Group:
    """Corpus entries of one language (English from every file; each other file alone), so
    that an item's headline halves and sentences are of one language."""

    titles: dict[str, None] = field(default_factory=dict)  # ordered and distinct
    sentences: dict[str, None] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)

    def halves(self) -> tuple[list[str], list[str]]:
        heads, tails = [], []
        for t in self.titles:
            words = t.split()
            heads.append(" ".join(words[: len(words) // 2]))
            tails.append(" ".join(words[len(words) // 2 :]))
        return heads, tails


def load_corpus(folder: Path = CORPUS) -> list[Group]:
    """Every entry of every corpus feed, through feedparser (the one parse at start), in
    language groups, largest first; groups too small to vary are left out."""
    import feedparser

    groups: dict[str, Group] = {}
    for path in sorted(folder.glob("*.xml")):
        parsed = feedparser.parse(
            path.read_bytes(), sanitize_html=False, resolve_relative_uris=False
        )
        for e in parsed.entries:
            title = _text(str(e.get("title") or ""))
            summary = _text(str(e.get("summary") or ""))
            content = _text(str(e.content[0].get("value") or "")) if e.get("content") else ""
            g = groups.setdefault(
                "en" if is_english(f"{title} {summary or content}") else path.name, Group()
            )
            if len(title.split()) >= 4:
                g.titles[title] = None
            for part in (summary, content):
                for s in _SENTENCE_END.split(part):
                    if 40 <= len(s) <= 300 and len(s.split()) >= 6:
                        g.sentences[s] = None
            tags = tuple(str(t.get("term")) for t in e.get("tags") or () if t.get("term"))
            g.sources.append(
                Source(
                    host=urlsplit(str(e.get("link") or "")).hostname or "news.example.org",
                    author=_text(str(e.get("author") or "")),
                    tags=tags[:3],
                    summary_chars=len(summary or content),
                )
            )
    usable = [g for g in groups.values() if len(g.titles) >= 20 and len(g.sentences) >= 40]
    if not usable:
        raise SystemExit(f"no usable corpus in {folder}")
    return sorted(usable, key=lambda g: -len(g.sources))


@dataclass(frozen=True, slots=True)
class Story:
    guid: str
    link: str
    title: str
    summary_html: str
    author: str
    tags: tuple[str, ...]
    published: int  # epoch seconds


def make_stories(groups: list[Group], feeds: int, per_feed: int, epoch: int) -> list[list[Story]]:
    """Feed n's items, a deterministic function of (n, position): distinct guids, links,
    headlines (each head/tail pair of a group once) and summaries (sentences drawn for each
    item). Groups are drawn in proportion to their size; a group whose pairs run out passes
    its turn to the largest (English)."""
    rng = random.Random(SEED)
    halves = [g.halves() for g in groups]
    sentences = [list(g.sentences) for g in groups]
    weights = [len(g.sources) for g in groups]
    used: set[tuple[int, int, int]] = set()
    taken = [0] * len(groups)
    titles: set[str] = set()
    summaries: set[tuple[str, ...]] = set()
    out: list[list[Story]] = []
    for n in range(feeds):
        items = []
        for i in range(per_feed):
            k = rng.choices(range(len(groups)), weights)[0]
            heads, tails = halves[k]
            if taken[k] >= len(heads) * (len(heads) - 1) // 2:  # keep the draws quick
                k = 0
                heads, tails = halves[0]
            taken[k] += 1
            while True:  # a headline and a summary no other item has
                a, b = rng.randrange(len(heads)), rng.randrange(len(heads))
                title = f"{heads[a]} {tails[b]}"
                if a != b and (k, a, b) not in used and title not in titles:
                    used.add((k, a, b))
                    titles.add(title)
                    break
            src = groups[k].sources[rng.randrange(len(groups[k].sources))]
            want = min(max(src.summary_chars, 120), 600)
            pool = sentences[k]
            picked: list[str] = []
            while not picked or tuple(picked) in summaries:
                picked = []  # a small group runs out of short summaries: grow them
                while sum(len(s) + 1 for s in picked) < want and len(picked) < 6:
                    s = pool[rng.randrange(len(pool))]
                    if s not in picked:
                        picked.append(s)
                want += 20
            summaries.add(tuple(picked))
            paragraphs = [picked[:1], picked[1:]] if len(picked) > 1 else [picked]
            summary = "".join(f"<p>{html.escape(' '.join(p))}</p>" for p in paragraphs)
            slug = _SLUG.sub("-", title.lower()).strip("-")[:60] or "story"
            link = f"https://{src.host}/bench/{n}/{i}/{slug}"
            if (n + i) % 3 == 0:
                link += "?utm_source=rss&utm_medium=feed"
            guid = link if n % 2 == 0 else f"urn:bench:feed-{n}:item-{i}"
            # Newest first, an hour or so apart; feeds a few seconds apart from each other.
            published = epoch - i * 3600 - rng.randrange(1800) - n * 7
            items.append(Story(guid, link, title, summary, src.author, src.tags, published))
        out.append(items)
    return out


def _rfc822(ts: int) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def render_rss(n: int, items: Sequence[Story], updated: int) -> bytes:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>\n'
        f"<title>Bench feed {n}</title>\n<link>https://feeds.bench.test/{n}/</link>\n"
        f"<description>Corpus stories, feed {n}</description>\n"
        f"<lastBuildDate>{_rfc822(updated)}</lastBuildDate>\n"
    ]
    for it in items:
        permalink = "" if it.guid == it.link else ' isPermaLink="false"'
        out.append(
            f"<item>\n<title>{escape(it.title)}</title>\n<link>{escape(it.link)}</link>\n"
            f"<guid{permalink}>{escape(it.guid)}</guid>\n"
            f"<pubDate>{_rfc822(it.published)}</pubDate>\n"
        )
        if it.author:
            out.append(f"<dc:creator>{escape(it.author)}</dc:creator>\n")
        out.extend(f"<category>{escape(t)}</category>\n" for t in it.tags)
        out.append(f"<description>{escape(it.summary_html)}</description>\n</item>\n")
    out.append("</channel>\n</rss>\n")
    return "".join(out).encode()


def render_atom(n: int, items: Sequence[Story], updated: int) -> bytes:
    out = [
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
        f"<title>Bench feed {n}</title>\n<id>tag:bench.test,2026:feed-{n}</id>\n"
        f'<link rel="alternate" href="https://feeds.bench.test/{n}/"/>\n'
        f"<updated>{_iso(updated)}</updated>\n"
    ]
    for it in items:
        out.append(
            f"<entry>\n<title>{escape(it.title)}</title>\n<id>{escape(it.guid)}</id>\n"
            f'<link rel="alternate" href={quoteattr(it.link)}/>\n'
            f"<published>{_iso(it.published)}</published>\n"
            f"<updated>{_iso(it.published)}</updated>\n"
        )
        if it.author:
            out.append(f"<author><name>{escape(it.author)}</name></author>\n")
        out.extend(f"<category term={quoteattr(t)}/>\n" for t in it.tags)
        out.append(f'<summary type="html">{escape(it.summary_html)}</summary>\n</entry>\n')
    out.append("</feed>\n")
    return "".join(out).encode()


# --- responses -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One feed's responses, rendered once: heads end before the blank line, so that
    `Connection: close` can be added when the client asked for it."""

    plain_head: bytes
    plain: bytes
    gz_head: bytes
    gz: bytes
    not_modified_head: bytes
    etags: frozenset[bytes]  # the plain and the gzip representation's
    last_modified: float


def build_table(stories: list[list[Story]]) -> list[Entry]:
    table = []
    for n, items in enumerate(stories):
        updated = max(it.published for it in items)
        body = render_atom(n, items, updated) if n % 5 == 4 else render_rss(n, items, updated)
        gz = gzip.compress(body, compresslevel=6, mtime=0)
        tag = hashlib.sha1(body).hexdigest()[:20]
        etag, etag_gz = f'"{tag}"'.encode(), f'"{tag}-gz"'.encode()
        lm = _rfc822(updated).encode()
        ctype = (
            b"application/atom+xml; charset=utf-8"
            if n % 5 == 4
            else b"application/rss+xml; charset=utf-8"
        )
        common = b"Last-Modified: " + lm + b"\r\nVary: Accept-Encoding\r\n"
        plain_head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\n" + common
            + b"ETag: " + etag + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n"
        )  # fmt: skip
        gz_head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\n" + common
            + b"ETag: " + etag_gz + b"\r\nContent-Encoding: gzip\r\n"
            + b"Content-Length: " + str(len(gz)).encode() + b"\r\n"
        )  # fmt: skip
        nm_head = b"HTTP/1.1 304 Not Modified\r\n" + common + b"ETag: " + etag + b"\r\n"
        table.append(
            Entry(plain_head, body, gz_head, gz, nm_head, frozenset((etag, etag_gz)), updated)
        )
    return table


def _json(body: object, status: bytes = b"200 OK") -> tuple[bytes, bytes]:
    data = json.dumps(body).encode()
    head = (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
        b"Cache-Control: no-store\r\nContent-Length: " + str(len(data)).encode() + b"\r\n"
    )
    return head, data


_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n",
    b"not found\n",
)
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


# --- counters ------------------------------------------------------------------------------------


@dataclass
class Agent:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    paths: set[int] = field(default_factory=set)
    first: float = 0.0
    last: float = 0.0


class Counters:
    """Per path, by status, per User-Agent; plain Python objects, as the server is one
    process and one thread."""

    def __init__(self, feeds: int) -> None:
        self.feeds = feeds
        self.reset()

    def reset(self) -> None:
        self.by_status: Counter[int] = Counter()
        self.per_path = [0] * self.feeds
        self.fetched_by: dict[int, list[str]] = {}  # path -> agents, for paths fetched twice+
        self.first_agent: list[str | None] = [None] * self.feeds
        self.agents: dict[str, Agent] = {}
        self.distinct = 0
        self.all_fetched_at: float | None = None
        self.first: float | None = None
        self.last: float | None = None
        self.misdirected = 0  # a feed asked for on another port than its own
        self.reset_at = time.time()

    def count(self, n: int, status: int, agent: str) -> None:
        now = time.time()
        self.by_status[status] += 1
        a = self.agents.get(agent)
        if a is None:
            a = self.agents[agent] = Agent(first=now)
        a.requests += 1
        a.statuses[status] += 1
        a.last = now
        if self.first is None:
            self.first = now
        self.last = now
        if n < 0:
            return
        a.paths.add(n)
        seen = self.per_path[n]
        self.per_path[n] = seen + 1
        if seen == 0:
            self.first_agent[n] = agent
            self.distinct += 1
            if self.distinct == self.feeds:
                self.all_fetched_at = now
        elif seen == 1:
            self.fetched_by[n] = [self.first_agent[n] or "", agent]
        else:
            self.fetched_by[n].append(agent)

    def stats(self, brief: bool) -> dict[str, Any]:
        cpu = os.times()
        twice = sorted(self.fetched_by)
        out: dict[str, Any] = {
            "feeds": self.feeds,
            "requests": sum(self.by_status.values()),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "paths_fetched": self.distinct,
            "paths_more_than_once": len(twice),
            "max_per_path": max(self.per_path, default=0),
            "misdirected": self.misdirected,
            "first_request": self.first,
            "last_request": self.last,
            "all_fetched_at": self.all_fetched_at,
            "reset_at": self.reset_at,
            "cpu_s": cpu.user + cpu.system,
            "by_agent": {
                name: {
                    "requests": a.requests,
                    "by_status": {str(k): v for k, v in sorted(a.statuses.items())},
                    "paths": len(a.paths),
                    "first": a.first,
                    "last": a.last,
                }
                for name, a in self.agents.items()
            },
            "doubles": {f"/feed/{n}.xml": self.fetched_by[n] for n in twice[:20]},
        }
        if not brief:
            out["per_path"] = {f"/feed/{n}.xml": c for n, c in enumerate(self.per_path) if c}
        return out


# --- the server ----------------------------------------------------------------------------------


class Handler:
    """Request handling shared by every connection (the protocol objects stay tiny)."""

    def __init__(self, table: list[Entry], ports: list[int], counters: Counters) -> None:
        self.table = table
        self.ports = ports
        self.counters = counters
        self._gzip_ok: dict[bytes, bool] = {}
        self._ims: dict[bytes, float | None] = {}

    def accepts_gzip(self, value: bytes) -> bool:
        ok = self._gzip_ok.get(value)
        if ok is None:
            ok = False
            for token in value.lower().split(b","):
                coding, _, params = token.strip().partition(b";")
                if coding.strip() in (b"gzip", b"x-gzip", b"*"):
                    q = params.strip()
                    ok = not (q.startswith(b"q=") and float(q[2:] or 0) == 0)
            if len(self._gzip_ok) < 1000:
                self._gzip_ok[value] = ok
        return ok

    def ims(self, value: bytes) -> float | None:
        if value not in self._ims:
            try:
                ts: float | None = email.utils.parsedate_to_datetime(value.decode()).timestamp()
            except (TypeError, ValueError, IndexError, UnicodeDecodeError):
                ts = None
            if len(self._ims) < 100_000:
                self._ims[value] = ts
        return self._ims[value]

    def respond(self, port: int, head: bytes) -> tuple[bytes, bytes, bool] | None:
        """(response head, body, keep-alive) for one request head; None: a bad request."""
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return None
        method, target, version = parts
        inm = ims = ae = conn = None
        agent = b""
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"if-none-match":
                inm = v.strip()
            elif k == b"if-modified-since":
                ims = v.strip()
            elif k == b"accept-encoding":
                ae = v
            elif k == b"connection":
                conn = v.strip().lower()
            elif k == b"user-agent":
                agent = v.strip()
        keep = conn != b"close" if version == b"HTTP/1.1" else conn == b"keep-alive"
        path, _, query = target.partition(b"?")
        if method not in (b"GET", b"HEAD"):
            return b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n", b"", keep
        n = -1
        if path.startswith(b"/feed/") and path.endswith(b".xml") and path[6:-4].isdigit():
            n = int(path[6:-4])
            if n >= len(self.table):
                n = -1
        name = agent.decode("latin-1")
        if n < 0:
            if path == b"/stats":
                resp = _json(self.counters.stats(brief=b"brief=1" in query))
            elif path == b"/reset":
                self.counters.reset()
                resp = _json({"reset": True})
            else:
                self.counters.count(-1, 404, name)
                resp = _NOT_FOUND
            return resp[0], resp[1] if method == b"GET" else b"", keep
        if self.ports[n % len(self.ports)] != port:
            self.counters.misdirected += 1
            self.counters.count(-1, 404, name)
            return _NOT_FOUND[0], _NOT_FOUND[1], keep
        e = self.table[n]
        if inm is not None:
            fresh = inm == b"*" or any(
                t.strip().removeprefix(b"W/") in e.etags for t in inm.split(b",")
            )
        elif ims is not None:
            ts = self.ims(ims)
            fresh = ts is not None and ts >= e.last_modified
        else:
            fresh = False
        if fresh:
            self.counters.count(n, 304, name)
            return e.not_modified_head, b"", keep
        self.counters.count(n, 200, name)
        if ae is not None and self.accepts_gzip(ae):
            return e.gz_head, e.gz if method == b"GET" else b"", keep
        return e.plain_head, e.plain if method == b"GET" else b"", keep


class FeedProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive and pipelining; requests carry no body we care about."""

    def __init__(self, handler: Handler, port: int) -> None:
        self.handler = handler
        self.port = port
        self.buf = b""
        self.skip = 0  # request body bytes still to discard
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        buf = self.buf + data if self.buf else data
        if self.skip:
            dropped = min(self.skip, len(buf))
            self.skip -= dropped
            buf = buf[dropped:]
        while buf:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    self.transport.close()
                    return
                break
            head, buf = buf[:end], buf[end + 4 :]
            length = _content_length(head)
            if length:
                dropped = min(length, len(buf))
                buf = buf[dropped:]
                self.skip = length - dropped
            answer = self.handler.respond(self.port, head)
            if answer is None:
                self.transport.write(_BAD_REQUEST)
                self.transport.close()
                return
            resp_head, body, keep = answer
            tail = b"\r\n" if keep else b"Connection: close\r\n\r\n"
            self.transport.write(resp_head + tail + body)
            if not keep:
                self.transport.close()
                return
        self.buf = buf


def _content_length(head: bytes) -> int:
    i = head.lower().find(b"\r\ncontent-length:")
    if i < 0:
        return 0
    value = head[i + 17 :].split(b"\r\n", 1)[0].strip()
    return int(value) if value.isdigit() else 0


def bind_ports(port: int, count: int) -> list[socket.socket]:
    """`count` listening sockets on consecutive ports from `port` (0: any free run of them)."""
    for _attempt in range(100):
        socks: list[socket.socket] = []
        try:
            base = port
            for i in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                socks.append(s)
                s.bind((HOST, base + i if base else 0))
                if not base:
                    base = s.getsockname()[1]
            for s in socks:
                s.listen(1024)  # a daemon opens up to `concurrency` connections at once
                s.setblocking(False)
            return socks
        except OSError:
            for s in socks:
                s.close()
            if port:
                raise
    raise SystemExit(f"no run of {count} free consecutive ports found")


async def serve(table: list[Entry], socks: list[socket.socket], ready: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    ports = [s.getsockname()[1] for s in socks]
    handler = Handler(table, ports, Counters(len(table)))
    servers = []
    for s, p in zip(socks, ports, strict=True):

        def factory(port: int = p) -> FeedProtocol:
            return FeedProtocol(handler, port)

        servers.append(await loop.create_server(factory, sock=s, backlog=1024))
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY " + json.dumps(ready | {"ports": ports}), flush=True)
    await stop.wait()
    for srv in servers:
        srv.close()


def build(feeds: int, per_feed: int, epoch: int) -> list[Entry]:
    return build_table(make_stories(load_corpus(), feeds, per_feed, epoch))


# --- the handle the benches use ------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:
    _prctl: Callable[..., int] | None = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the bench dies, even by SIGKILL, so a crashed
    bench never leaves servers or daemons behind (Linux; elsewhere a no-op)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class FeedServer:
    """The server as a child process: start, URLs, counters, stop.

    Start it before any thread is running (preexec_fn and threads do not mix)."""

    def __init__(self, feeds: int = 2000, ports: int = 1, per_feed: int = ITEMS_PER_FEED) -> None:
        self.feeds = feeds
        self.per_feed = per_feed
        self.n_ports = ports
        self.ports: list[int] = []
        self.info: dict[str, Any] = {}
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 180) -> FeedServer:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--feeds", str(self.feeds)]
        cmd += ["--ports", str(self.n_ports), "--port", "0", "--items", str(self.per_feed)]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # Ctrl-C reaches the bench, which stops us in order
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = ""
        while not line.startswith("READY "):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                self.stop()
                raise RuntimeError(f"feed server not ready within {timeout:.0f} s")
            line = self.proc.stdout.readline()
            if not line:
                self.stop()
                raise RuntimeError("feed server exited before it was ready")
        sel.close()
        self.info = json.loads(line[6:])
        self.ports = list(self.info["ports"])
        return self

    def url(self, n: int) -> str:
        return f"http://{HOST}:{self.ports[n % len(self.ports)]}/feed/{n}.xml"

    def urls(self) -> list[str]:
        return [self.url(n) for n in range(self.feeds)]

    def _get(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://{HOST}:{self.ports[0]}{path}", timeout=30) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    def stats(self, brief: bool = False) -> dict[str, Any]:
        return self._get("/stats?brief=1" if brief else "/stats")

    def reset(self) -> None:
        self._get("/reset")

    def cpu_s(self) -> float:
        return float(self.stats(brief=True)["cpu_s"])

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


# --- the ceiling ---------------------------------------------------------------------------------


def _raw_client(urls: list[str], connections: int, passes: int, out: Any) -> None:
    """A bare HTTP/1.1 client (keep-alive, Content-Length bodies, gzip accepted but not
    decoded): `passes` times every URL for 200s, then as often with If-None-Match for 304s.
    Runs in its own process; reports walls and the server's CPU seconds for each kind."""

    async def cycle(etags: dict[str, bytes]) -> tuple[float, int, dict[str, bytes]]:
        todo = iter(urls * passes)
        got: dict[str, bytes] = {}
        size = 0

        async def worker() -> None:
            nonlocal size
            conns: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
            for url in todo:
                hostport = url.split("/")[2]
                if hostport not in conns:
                    host, port = hostport.split(":")
                    conns[hostport] = await asyncio.open_connection(host, int(port))
                reader, writer = conns[hostport]
                path = "/" + url.split("/", 3)[3]
                req = f"GET {path} HTTP/1.1\r\nHost: {hostport}\r\nUser-Agent: ceiling\r\n"
                req += "Accept-Encoding: gzip\r\n"
                if url in etags:
                    req += f"If-None-Match: {etags[url].decode()}\r\n"
                writer.write((req + "\r\n").encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.lower() == b"content-length":
                        length = int(v)
                    elif k.lower() == b"etag":
                        got[url] = v.strip()
                if length:
                    size += len(await reader.readexactly(length))
            for _r, w in conns.values():
                w.close()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return time.perf_counter() - started, size, got

    def server_cpu() -> float:
        stats_url = urls[0].split("/feed/")[0] + "/stats?brief=1"
        with urllib.request.urlopen(stats_url, timeout=30) as r:
            return float(json.loads(r.read())["cpu_s"])

    async def main() -> None:
        cpu0 = server_cpu()
        wall1, size, etags = await cycle({})
        cpu1 = server_cpu()
        wall2, _, _ = await cycle(etags)
        cpu2 = server_cpu()
        n = len(urls) * passes
        out.put(
            {
                "c1": wall1,
                "c2": wall2,
                "bytes": size,
                "cpu1_us": (cpu1 - cpu0) / n * 1e6,
                "cpu2_us": (cpu2 - cpu1) / n * 1e6,
            }
        )

    asyncio.run(main())


def ceiling(feeds: int, ports: int, rounds: int, passes: int = 5) -> None:
    """Print how fast bare clients pull every feed (200s, then 304s) from the server, and
    the server's CPU per request: the numbers quoted at the top of this file. With two
    client processes the per-request CPU also counts the other client's requests."""
    ctx = mp.get_context("spawn")
    print(
        f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; {feeds} feeds on "
        f"{ports} port(s), {passes} passes per cycle, 50 connections per client, best of {rounds}"
    )
    with FeedServer(feeds, ports) as srv:
        urls = srv.urls()
        for clients in (1, 2):
            best: dict[str, float] = {}
            for _ in range(rounds):
                q = ctx.Queue()
                procs = [
                    ctx.Process(target=_raw_client, args=(urls, 50, passes, q))
                    for _ in range(clients)
                ]
                for p in procs:
                    p.start()
                res = [q.get(timeout=300) for _ in procs]
                for p in procs:
                    p.join()
                n = clients * feeds * passes
                now = {
                    "r1": n / max(r["c1"] for r in res),
                    "r2": n / max(r["c2"] for r in res),
                    "mb": sum(r["bytes"] for r in res) / max(r["c1"] for r in res) / 1e6,
                    "cpu1": -min(r["cpu1_us"] for r in res) / clients,
                    "cpu2": -min(r["cpu2_us"] for r in res) / clients,
                }
                best = {k: max(v, best.get(k, v)) for k, v in now.items()}
            print(
                f"{clients} client process(es): 200s {best['r1']:,.0f} req/s "
                f"({best['mb']:.0f} MB/s gzip), 304s {best['r2']:,.0f} req/s; server CPU "
                f"{-best['cpu1']:.0f} µs per 200, {-best['cpu2']:.0f} µs per 304"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--items", type=int, default=ITEMS_PER_FEED, help="items per feed")
    ap.add_argument("--port", type=int, default=0, help="first port (0: any free run)")
    ap.add_argument("--ports", type=int, default=1, help="K ports; feed n on port base+(n%%K)")
    ap.add_argument("--epoch", type=int, default=None, help="newest item's time (default now)")
    ap.add_argument("--ceiling", action="store_true", help="measure this server's ceiling")
    ap.add_argument("--rounds", type=int, default=3, help="--ceiling: rounds, best kept")
    ap.add_argument("--passes", type=int, default=5, help="--ceiling: passes per cycle")
    args = ap.parse_args()
    if args.ceiling:
        ceiling(args.feeds, args.ports, args.rounds, args.passes)
        return
    started = time.perf_counter()
    epoch = args.epoch if args.epoch is not None else int(time.time()) // 3600 * 3600
    table = build(args.feeds, args.items, epoch)
    socks = bind_ports(args.port, args.ports)
    ready = {
        "feeds": args.feeds,
        "items": args.feeds * args.items,
        "bytes": sum(len(e.plain) for e in table),
        "gzip_bytes": sum(len(e.gz) for e in table),
        "build_s": round(time.perf_counter() - started, 2),
        "pid": os.getpid(),
    }
    asyncio.run(serve(table, socks, ready))


if __name__ == "__main__":
    main()
