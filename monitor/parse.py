"""Feed bytes -> normalized items: identity, dates, plain text, canonical URL, publisher.

feedparser does the XML (RSS 0.9x/1.0/2.0, Atom, broken feeds through its loose parser, the
charset rules of RFC 3023); this module turns each entry into a `monitor.models.ItemData`.
The text, URL and date helpers live in `monitor.normalize`.

feedparser is always given the bytes wrapped in `io.BytesIO`: given a `str` it would treat it
as a file name or a URL and open it. It runs with `sanitize_html=False` and
`resolve_relative_uris=False`: both rewrite every HTML fragment through feedparser's
pure-Python SGML parser (a third of its time) and we keep no HTML, only text, which is escaped
wherever it is rendered. feedparser still resolves links against `xml:base`. Links left relative
are resolved here against the feed URL (else the channel's site link). The feed URL is not given
to feedparser as its Content-Location: feedparser would then also rewrite relative Atom ids
("tag/123" -> "https://host/tag/123"), and an item's identity must not change when the feed's
URL does.

Identity (`guid`, unique per feed):

1. the entry's own id (RSS `<guid>`, Atom `<id>`, RDF `rdf:about`), verbatim: it is what the
   publisher promises to keep stable, and it stays the same when the title, text or even the
   link of a story is edited, so an edited story is the same item (SPEC: "an item whose text
   changes keeps its identity");
2. no id: the canonical URL (tracking parameters removed, so the same link with another
   `utm_campaign` is the same item);
3. neither: `sha256:` + sha256 of title and date, the only stable things left.

Some feeds give every entry the same guid (a CMS bug; Miniflux's rss adapter documents the same
case). Entries that collide on all of guid, URL and title are the same item, listed twice: the
first is kept, under its own guid. Within one parse, different entries whose guids collide are
all told apart, the first included, by appending `#` and 12 hex digits of a hash of their URL
and title: each item's identity then depends only on itself, not on its position, so the next
poll gives it the same guid.

Dates: `published_at` is the entry's published date, else its updated date (RSS `pubDate`,
Atom `published`/`updated`, `dc:date`), from feedparser's UTC `*_parsed` struct through
`calendar.timegm`, so the machine's time zone never matters. Strings feedparser cannot read
are tried as epoch seconds and as RFC 822 with non-English names (`parse_loose_date`). Then a
dateline in the text (the seed page's "Tue Jun 18, 2019 04:01PM", read as UTC). A date before
1990 or more than 2 days after `fetched_at` is absurd and counts as missing. Missing stays None:
the store fills in the first-seen time.
"""

from __future__ import annotations

import calendar
import codecs
import datetime as dt
import hashlib
import io
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import charset_normalizer
import feedparser
from selectolax.lexbor import LexborHTMLParser

from monitor import feedtune
from monitor.errors import ParseError
from monitor.feedguard import refuse_entities
from monitor.normalize import (
    MAX_CATEGORIES,
    MAX_FUTURE,
    MAX_HTML,
    MAX_SHORT,
    MAX_TEXT,
    MAX_TITLE,
    MIN_DATE,
    RFC822_ZONES,
    canonical_url,
    html_to_text,
    one_line,
    parse_loose_date,
    parse_zoned,
    plain_to_text,
    strip_page_chrome,
    zone_name,
)
from monitor.records import ItemData, ParsedFeed
from monitor.web import is_web_url

feedtune.install()  # the same results as feedparser's own dict methods, for less CPU

__all__ = ["ParsedFeed", "canonical_url", "html_to_text", "parse_feed"]

UTC = dt.UTC
DERIVED_TITLE_MAX = 120  # an entry without a title is named after the start of its text
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "html", "xhtml"})
_EPOCH = re.compile(r"\d{9,13}(\.\d+)?")
_NO_LANGUAGE = frozenset({"mul", "und", "zxx", "mis"})


def parse_feed(
    body: bytes, *, feed_id: str, base_url: str | None, fetched_at: dt.datetime
) -> ParsedFeed:
    """bytes -> normalized items.

    Raises `ParseError` when the bytes are not a feed at all (an HTML page, garbage: feedparser
    finds no feed version and no entries). An empty channel is a valid, empty feed. A feed
    feedparser could only read with its loose parser is still parsed; `bozo` says why.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("parse_feed takes the body as bytes")
    if fetched_at.tzinfo is None:
        raise ValueError("fetched_at must be an aware datetime")
    body = bytes(body)
    refused = refuse_entities(body)
    if refused:
        raise ParseError(f"refused: {refused}")
    parsed = _feedparser(body)
    if _guessed_wrong(parsed, body) and (better := _detect_encoding(body)):
        parsed = _feedparser(body, charset=better)
    bozo_exc = parsed.get("bozo_exception") if parsed.get("bozo") else None
    if not parsed.get("version") and not parsed.get("entries"):
        why = f" ({_short(bozo_exc)})" if bozo_exc is not None else ""
        raise ParseError(f"not a feed: no RSS/Atom/RDF root and no entries{why}")

    feed = parsed.get("feed", {})
    feed_language = _language(feed.get("language"))
    base = _base(feed, base_url)
    max_date = fetched_at.astimezone(UTC) + MAX_FUTURE
    items = [
        item
        for entry in parsed.get("entries", [])
        if (item := _item(entry, feed_id, base, feed_language, max_date)) is not None
    ]
    title = one_line(plain_to_text(str(feed.get("title") or "")), MAX_TITLE) or None
    return ParsedFeed(title=title, items=_unique_guids(items), bozo=_short(bozo_exc))


def looks_like_html(body: bytes) -> bool:
    """An HTML page rather than a feed or plain text: a doctype or an html/head/body tag near
    the start (after a byte-order mark, spaces and comments)."""
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html")) or any(
        tag in head for tag in (b"<html", b"<head", b"<body")
    )


def parse_page(body: bytes, *, feed_id: str, url: str | None, fetched_at: dt.datetime) -> ItemData:
    """An HTML page as one item, read the way the daemon reads a page pasted into a feed: the
    title is the page's (<title>, else its first <h1>), the text is the story without the
    site's chrome (banners, the publisher line, the dateline: `strip_page_chrome`), and the
    publisher and dateline found around the title fill `source` and `published_at`."""
    html = body.decode(_page_charset(body), errors="replace")
    tree = LexborHTMLParser(html[:MAX_HTML])
    node = tree.css_first("title") or tree.css_first("h1")
    title = one_line(plain_to_text(node.text() if node is not None else ""), MAX_TITLE)
    story = strip_page_chrome(html_to_text(html), title)
    max_date = fetched_at.astimezone(UTC) + MAX_FUTURE
    canonical = canonical_url(url, None)
    return ItemData(
        feed_id=feed_id,
        guid=canonical or "sha256:" + _sha(title, story.text[:200]),
        url=canonical,
        title=title,
        content=story.text[:MAX_TEXT],
        source=story.publisher,
        published_at=_valid(story.dateline, max_date),
        content_hash=content_hash(title, "", story.text),
    )


_META_CHARSET = re.compile(rb"<meta[^>]+charset=[\"']?([A-Za-z0-9_.:-]+)", re.I)


def _page_charset(body: bytes) -> str:
    m = _META_CHARSET.search(body[:4096])
    if m:
        name = m.group(1).decode("ascii", "replace")
        try:
            codecs.lookup(name)
            return name
        except LookupError:
            pass
    return "utf-8"


def _feedparser(body: bytes, charset: str | None = None) -> Any:
    headers = {"content-type": f"application/xml; charset={charset}"} if charset else None
    try:
        return feedparser.parse(
            io.BytesIO(body),
            sanitize_html=False,
            resolve_relative_uris=False,
            response_headers=headers,
        )
    except MemoryError:
        raise  # the parse worker must see it as such (it is replaced)
    except Exception as exc:  # feedparser's loose parser has crashed on odd input before
        raise ParseError(f"feed could not be parsed: {type(exc).__name__}: {exc}") from exc


def _guessed_wrong(parsed: Any, body: bytes) -> bool:
    """feedparser fell back to windows-1252 (the bytes were not the UTF-8 the feed declared, or
    implied by declaring nothing) and windows-1252 is not what they are either: text in it
    would be mojibake (an EUC-KR feed without a declaration). Latin-1 feeds without a
    declaration, the usual case, read fine as windows-1252 and are left alone."""
    if str(parsed.get("encoding", "")).lower() != "windows-1252":
        return False
    if not isinstance(parsed.get("bozo_exception"), feedparser.CharacterEncodingOverride):
        return False
    return charset_normalizer.from_bytes(body, cp_isolation=["cp1252"]).best() is None


def _detect_encoding(body: bytes) -> str | None:
    """charset-normalizer's best reading of the bytes (see docs/design.md, "Encodings")."""
    best = charset_normalizer.from_bytes(body).best()
    return best.encoding if best is not None and best.encoding != "cp1252" else None


# --- one entry -----------------------------------------------------------------------------


def _item(
    fp_entry: Mapping[str, Any],
    feed_id: str,
    base: str | None,
    feed_language: str | None,
    max_date: dt.datetime,
) -> ItemData | None:
    # A plain dict: FeedParserDict maps missing keys to others ("updated" -> "published"),
    # which would hide which dates the entry really has.
    entry = dict(fp_entry)
    title = one_line(_text(entry.get("title_detail"), entry.get("title")), MAX_TITLE)
    summary = _text(entry.get("summary_detail"), entry.get("summary"))
    content = "\n".join(
        dict.fromkeys(  # several <content> elements: each distinct text once
            t for c in entry.get("content") or () if (t := _text(c, c.get("value")))
        )
    )
    # Pages pasted into the feed (the seed article): keep the story, learn publisher and time.
    story_c = strip_page_chrome(content, title)
    story_s = strip_page_chrome(summary, title)
    content, summary = story_c.text, story_s.text
    if content and (content == summary or _same_text(content, summary)):
        content = ""  # the same text given twice (description and content:encoded)
    elif not summary and content:
        summary, content = content, ""  # content only: it is the summary, as feedparser does

    url = canonical_url(_link(entry), base)

    source = (
        _source(entry)
        or _clean_short(entry.get("publisher"))
        or story_c.publisher
        or story_s.publisher
    )
    if source and title.endswith(f" - {source}"):  # Google News: "Headline - Publisher"
        title = title[: -len(source) - 3].rstrip()

    if not title:
        lead = (summary or content).split("\n", 1)[0]
        if len(lead) > DERIVED_TITLE_MAX:
            lead = lead[:DERIVED_TITLE_MAX].rsplit(" ", 1)[0] + "…"
        title = lead or (url or "")
    if not title and not summary and not content:
        return None  # nothing to match, show or identify: an empty <entry/>

    published_at = (
        _entry_date(entry, "published", max_date)
        or _entry_date(entry, "updated", max_date)
        or _entry_date(entry, "created", max_date)
        or _valid(story_c.dateline, max_date)
        or _valid(story_s.dateline, max_date)
    )
    guid = _guid(entry, url, title, published_at)

    language = _language(_entry_language(entry)) or feed_language
    return ItemData(
        feed_id=feed_id,
        guid=guid,
        url=url,
        title=title,
        summary=summary[:MAX_TEXT],
        content=content[:MAX_TEXT],
        author=_author(entry),
        categories=_categories(entry.get("tags")),
        source=source,
        language=language,
        published_at=published_at,
        content_hash=content_hash(title, summary, content),
    )


def _same_text(a: str, b: str) -> bool:
    """Equal but for case and spacing (cheap: no accent folding on whole articles)."""
    if abs(len(a) - len(b)) > max(len(a), len(b)) // 10 + 8:
        return False
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def content_hash(title: str, summary: str, content: str) -> str:
    """sha256 hex of the item's text, whitespace-collapsed and casefolded: equal for the same
    story in another feed or another markup, different when the words change."""
    text = " ".join(part for part in (title, summary, content) if part).replace("\n", " ")
    # Normalized text (one_line, tidy) is usually collapsed already: printable (no space but
    # the space), no double, leading or trailing space. Only otherwise is it split and joined
    # (2-3 us of a feed item's 7).
    if not text.isprintable() or "  " in text or text[:1] == " " or text[-1:] == " ":
        text = " ".join(text.split())
    return hashlib.sha256(text.casefold().encode("utf-8")).hexdigest()


def _text(detail: Mapping[str, Any] | None, value: object) -> str:
    """One text construct as plain text, by the type feedparser found for it."""
    if isinstance(detail, Mapping):
        value = detail.get("value", value)
        kind = str(detail.get("type") or "text/html").lower()
    else:
        kind = "text/html"
    if not value or not isinstance(value, str):
        return ""
    if kind in _HTML_TYPES:
        return html_to_text(value)
    return plain_to_text(value)


def _link(entry: Mapping[str, Any]) -> str | None:
    # FeedBurner rewrites links through its own redirector and keeps the real one here.
    orig = entry.get("feedburner_origlink")
    if orig:
        return str(orig)
    link = entry.get("link")
    if link:
        return str(link)
    for candidate in entry.get("links") or ():
        if candidate.get("href") and candidate.get("rel", "alternate") == "alternate":
            return str(candidate["href"])
    if entry.get("guidislink") and entry.get("id"):
        return str(entry["id"])
    return None


def _base(feed: Mapping[str, Any], base_url: str | None) -> str | None:
    """Base for links feedparser left relative: the feed URL, else the site link."""
    if is_web_url(base_url):
        return base_url
    site = feed.get("link")
    if isinstance(site, str) and is_web_url(site):
        return site
    return None


def _source(entry: Mapping[str, Any]) -> str | None:
    """The original publisher the feed names: RSS `<source>` (Google News), Atom `<source>`."""
    src = entry.get("source")
    if isinstance(src, Mapping):
        return _clean_short(src.get("title"))
    return None


def _clean_short(value: object) -> str | None:
    if not value or not isinstance(value, str):
        return None
    return one_line(plain_to_text(value), MAX_SHORT) or None


def _author(entry: Mapping[str, Any]) -> str | None:
    author = _clean_short(entry.get("author"))
    if author:
        return author
    detail = entry.get("author_detail")
    if isinstance(detail, Mapping):
        return _clean_short(detail.get("name")) or _clean_short(detail.get("email"))
    return None


def _categories(tags: Iterable[Mapping[str, Any]] | None) -> tuple[str, ...]:
    names: dict[str, None] = {}
    for tag in tags or ():
        name = _clean_short(tag.get("term") or tag.get("label"))
        if name and name.casefold() not in {n.casefold() for n in names}:
            names[name] = None
        if len(names) >= MAX_CATEGORIES:
            break
    return tuple(names)


def _entry_language(entry: Mapping[str, Any]) -> str | None:
    """The entry's own language: `<dc:language>` in the item (RDF feeds such as DW's put it
    there and nowhere else), else the xml:lang of its title or summary."""
    own = entry.get("language")
    if isinstance(own, str) and own.strip():
        return own
    for key in ("title_detail", "summary_detail"):
        detail = entry.get(key)
        if isinstance(detail, Mapping) and detail.get("language"):
            return str(detail["language"])
    return None


def _language(tag: object) -> str | None:
    """Primary language subtag, lower case: 'en-US' -> 'en'; 'mul'/'und' -> None."""
    if not tag or not isinstance(tag, str):
        return None
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    if not primary.isascii() or not primary.isalpha() or not 2 <= len(primary) <= 3:
        return None
    return None if primary in _NO_LANGUAGE else primary


# --- dates ---------------------------------------------------------------------------------


def _entry_date(entry: Mapping[str, Any], key: str, max_date: dt.datetime) -> dt.datetime | None:
    raw = entry.get(key)
    if isinstance(raw, str) and _EPOCH.fullmatch(raw.strip()):
        # feedparser reads "1518478934" as an ISO 8601 ordinal date (2015-07-03)
        return _valid(parse_loose_date(raw), max_date)
    if isinstance(raw, str) and (zone := zone_name(raw)) and zone not in RFC822_ZONES:
        # a zone feedparser does not know, and reads as UTC: ours, or unknown
        return _valid(parse_zoned(raw), max_date)
    struct = entry.get(f"{key}_parsed")
    if isinstance(struct, time.struct_time):
        try:
            when = dt.datetime.fromtimestamp(calendar.timegm(struct), UTC)
        except (OverflowError, OSError, ValueError):
            when = None
        if (valid := _valid(when, max_date)) is not None:
            return valid
    if isinstance(raw, str):
        return _valid(parse_loose_date(raw), max_date)
    return None


def _valid(when: dt.datetime | None, max_date: dt.datetime) -> dt.datetime | None:
    if when is None or not MIN_DATE <= when <= max_date:
        return None
    return when.replace(microsecond=0)


# --- identity ------------------------------------------------------------------------------


def _sha(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def _guid(entry: Mapping[str, Any], url: str | None, title: str, when: dt.datetime | None) -> str:
    raw = entry.get("id")
    guid = " ".join(raw.split()) if isinstance(raw, str) else ""
    if guid and len(guid) <= 1_000:
        return guid
    if guid:  # absurdly long ids are hashed, so that they fit the column and the index
        return "sha256:" + _sha(guid)
    if url:
        return url
    return "sha256:" + _sha(title, when.isoformat() if when else "")


def _unique_guids(items: list[ItemData]) -> list[ItemData]:
    """Tell apart entries that share a guid (see the module docstring). The same entry listed
    twice (same guid, URL and title) is one item under its own guid: its identity must not
    change when the repeat goes away."""
    first: dict[tuple[str, str, str], ItemData] = {}
    for item in items:
        first.setdefault((item.guid, item.url or "", item.title), item)
    variants: dict[str, int] = {}
    for guid, _url, _title in first:
        variants[guid] = variants.get(guid, 0) + 1
    out: list[ItemData] = []
    for (guid, url, title), item in first.items():
        if variants[guid] > 1:  # different entries under one guid (a CMS bug)
            item = replace(item, guid=f"{guid}#{_sha(url, title)[:12]}")
        out.append(item)
    return out


def _short(exc: object) -> str | None:
    if exc is None:
        return None
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
