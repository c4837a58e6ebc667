"""Full text: an item's linked page -> the article alone, with its publisher and time (pure,
no I/O; it runs in the worker processes, see jobs.extract_and_match).

    article = extract_article(body, url=url, content_type="text/html; charset=utf-8")
    article.text, article.publisher, article.published_at

- **trafilatura** finds the article (docs/design.md, "Full text": measured against
  readability-lxml on the labelled set in tests/data/pages/, bench/fulltext.py), in its
  precision mode, without comments or tables.
- A page laid out in tables (old sites: the whole page is one `<table>`) gives trafilatura a
  table, not an article; when its text comes back as table rows the page is read again with
  the table tags turned into `<div>`s.
- Then our own chrome rules (`normalize.strip_page_chrome`, the ones feed text goes through):
  the header above a title line, the publisher and dateline named around it (the seed page:
  "Iran Press TV", "Tue Jun 18, 2019 04:01PM"), and footer lines (`TRAILING`: credits,
  copyright, "Subscribe ..." pitches).
- Publisher: the one named around the title (it names the original publisher, where the
  site's own name is the copier's), else schema.org `publisher.name`, else `og:site_name`.
  Time: the page's machine-readable publication time when it has one with a time of day
  (JSON-LD `datePublished`, `article:published_time`, `<time datetime>`), else the dateline
  by the title, else a date the page gives (trafilatura's htmldate), at 00:00 UTC.
- trafilatura is imported on first use, so a daemon without full text never loads it.
- Bounds: the page is cut at `MAX_PAGE_CHARS` characters and `MAX_PAGE_TAGS` tags before
  parsing (an article is near the top; lxml's cost grows with the tree), the text at
  `MAX_TEXT`. The worker's CPU deadline and memory limit stop anything worse.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import TYPE_CHECKING

from selectolax.lexbor import LexborHTMLParser

from monitor.errors import ExtractError
from monitor.normalize import (
    MAX_FUTURE,
    MAX_TEXT,
    MIN_DATE,
    Story,
    cut_html,
    parse_loose_date,
    strip_page_chrome,
    tidy,
)
from monitor.records import Article, utcnow

if TYPE_CHECKING:
    from trafilatura.settings import Document

__all__ = ["Article", "chrome_rules", "extract_article", "is_html"]

UTC = dt.UTC
MAX_PAGE_CHARS = 3_000_000
MAX_PAGE_TAGS = 60_000
MIN_WORDS = 5  # fewer words than this is not an article (an error page, a consent wall)

# Footer lines that trafilatura keeps at the end of an article, dropped from the end only.
TRAILING: tuple[str, ...] = (
    r"our standards:.{0,120}",
    r"(reporting|writing|additional reporting) by .{0,200}",
    r"(subscribe|sign up)\b.{0,200}",
    r"(copyright|©|\(c\)).{0,160}",
    r"\[editor: .{0,60}\]",
)
_TRAILING_RE = re.compile("|".join(f"(?:{p})" for p in TRAILING), re.I)
_TABLE_TAG = re.compile(r"<(/?)(?:table|tbody|thead|tfoot|tr|td|th)\b[^>]*>", re.I)
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.I)


def is_html(content_type: str | None, body: bytes) -> bool:
    """What the server says, else what the bytes look like (no Content-Type: a markup start)."""
    if content_type:
        return content_type.split(";", 1)[0].strip().lower() in _HTML_TYPES
    return body.lstrip()[:1] == b"<"


def extract_article(body: bytes, *, url: str | None, content_type: str | None) -> Article:
    """The article of a page; ExtractError when the page is not HTML or has none."""
    if not is_html(content_type, body):
        kind = (content_type or "unknown").split(";", 1)[0].strip()
        raise ExtractError(f"not an HTML page ({kind})")
    html = cut_html(_decode(body, content_type), MAX_PAGE_CHARS, MAX_PAGE_TAGS)
    doc = _trafilatura(html, url)
    text = (doc.text if doc is not None else "") or ""
    if _looks_tabular(text) or (len(text) < 200 and "<table" in html[:200_000].lower()):
        again = _trafilatura(_TABLE_TAG.sub(lambda m: f"<{m.group(1)}div>", html), url)
        if again is not None and len(again.text or "") >= len(text) // 2:
            doc, text = again, again.text or ""
    title = (doc.title if doc is not None else None) or None
    story = chrome_rules(text, title or "")
    text = story.text[:MAX_TEXT]
    if len(text.split()) < MIN_WORDS:
        raise ExtractError("no article text found in the page")
    meta = _Meta(html)
    published = meta.published_at() or story.dateline
    if published is None and doc is not None and doc.date:
        published = parse_loose_date(doc.date)
    if published is not None and not MIN_DATE <= published <= utcnow() + MAX_FUTURE:
        published = None  # absurd (before 1990, or days ahead), as for feed dates
    named = story.publisher
    if named and " " not in named and named.isupper():
        named = None  # a section label above the title ("RELEASE", "ANALYSIS"), not a name
    # (not trafilatura's sitename: without a site name in the page it is the URL's host)
    publisher = named or meta.publisher()
    return Article(text, title, publisher, published)


def chrome_rules(text: str, title: str) -> Story:
    """Our rules after the extractor: `strip_page_chrome` (the header above the title, the
    publisher and dateline by it), then TRAILING lines off the end."""
    story = strip_page_chrome(tidy(text), title)
    lines = story.text.split("\n") if story.text else []
    while lines and _TRAILING_RE.fullmatch(lines[-1]):
        lines.pop()
    return Story("\n".join(lines), story.publisher, story.dateline)


def _decode(body: bytes, content_type: str | None) -> str:
    m = _CHARSET.search(content_type or "")
    if m:
        try:
            return body.decode(m.group(1))
        except (LookupError, UnicodeDecodeError):
            pass
    from trafilatura.utils import decode_file

    return str(decode_file(body))  # <meta charset>, then detection, then UTF-8 with care


def _trafilatura(html: str, url: str | None) -> Document | None:
    # Imported on first use (0.15 s, and lxml's memory): the worker processes of a daemon
    # without full text never load it.
    import trafilatura
    from trafilatura.settings import Document

    try:
        doc = trafilatura.bare_extraction(
            html,
            url=url,
            favor_precision=True,
            include_comments=False,
            include_tables=False,
            with_metadata=True,
        )
    except (ValueError, TypeError, RecursionError) as exc:  # lxml's refusals of a tree
        raise ExtractError(f"the page could not be read: {type(exc).__name__}") from None
    return doc if isinstance(doc, Document) else None


def _looks_tabular(text: str) -> bool:
    lines = text.split("\n")[:5]
    return bool(lines) and sum(ln.startswith("|") for ln in lines) >= max(1, len(lines) // 2)


class _Meta:
    """The page's machine-readable metadata (schema.org JSON-LD, Open Graph, <time>)."""

    def __init__(self, html: str) -> None:
        head = html[:400_000]
        self.tree = LexborHTMLParser(head)
        self.ld: list[dict[str, object]] = []
        for node in self.tree.css('script[type="application/ld+json"]'):
            try:
                data = json.loads(node.text() or "null")
            except ValueError:
                continue
            items = data if isinstance(data, list) else [data]
            for d in items:
                if isinstance(d, dict):
                    graph = d.get("@graph")
                    self.ld += (
                        [g for g in graph if isinstance(g, dict)]
                        if isinstance(graph, list)
                        else [d]
                    )

    def publisher(self) -> str | None:
        for d in self.ld:
            pub = d.get("publisher")
            name = pub.get("name") if isinstance(pub, dict) else pub
            if isinstance(name, str) and name.strip():
                return name.strip()[:200]
        return self._meta("og:site_name")

    def published_at(self) -> dt.datetime | None:
        """A publication time with a time of day in it; None if the page gives only a date."""
        values = [d.get("datePublished") for d in self.ld]
        values += [self._meta("article:published_time"), self._meta("og:published_time")]
        time_node = self.tree.css_first("article time[datetime], time[datetime]")
        values.append(time_node.attributes.get("datetime") if time_node else None)
        for value in values:
            if isinstance(value, str) and ("T" in value or ":" in value):
                when = _iso(value)
                if when is not None:
                    return when
        return None

    def _meta(self, name: str) -> str | None:
        node = self.tree.css_first(f'meta[property="{name}"], meta[name="{name}"]')
        value = node.attributes.get("content") if node is not None else None
        return value.strip()[:200] if value and value.strip() else None


def _iso(value: str) -> dt.datetime | None:
    try:
        when = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return parse_loose_date(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # no zone given: read as UTC, as feed dates are
    return when.astimezone(UTC)
