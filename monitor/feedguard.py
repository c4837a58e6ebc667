"""Hostile feeds, stopped before or inside feedparser (docs/design.md, "Hostile feeds").

- `refuse_entities(body)`: a document that declares an XML entity is refused. feedparser keeps
  entities whose value is plain text and, when expat gives up on the expansion (past 8 MiB),
  its loose parser expands them itself, in Python: 100 kB x 1,000 references became a 100 MB
  field, 1 GB a 2 GB process. The scan runs on the very bytes feedparser's parsers get (its own
  `convert_to_utf8`: BOMs, UTF-16/32, EBCDIC, utf-7 and any codec an `encoding=` names), so
  no encoding hides `<!ENTITY`. A hit is excused only inside a CDATA section in the content
  (literal text to both parsers); not inside a comment, where feedparser's regex finds it too.
  A DOCTYPE without an internal subset (RSS 0.91's Netscape one) passes.
- `harden_feedparser()`, installed on import: feedparser's own worst regexes made linear, and
  its element depth capped:
  - the e-mail regex of `_sync_author_detail` is quadratic in an author's length (36,000
    characters: 5 s; 80 kB: 25 s with the GIL held): author-like values are cut to 512
    characters before it runs (we keep 300);
  - `RE_XML_PI_ENCODING` is cubic in a failing first line (30 kB: 74 s) and
    `RE_ENTITY_PATTERN` / `RE_DOCTYPE_PATTERN` quadratic in blank lines before the root: bounded
    drop-ins with the same groups;
  - elements nested deeper than MAX_DEPTH are refused, inside feedparser's own depth counter
    (no extra pass over the bytes).
  These patch feedparser 6.0.x internals (pinned in pyproject.toml); tests/test_hostile.py
  fails if an upgrade moves them. The parse worker's CPU deadline bounds whatever is left.
"""

from __future__ import annotations

import re
from typing import Any

import feedparser.encodings
import feedparser.sanitizer
from feedparser.mixin import _FeedParserMixin

MAX_DEPTH = 256  # real feeds nest fewer than 40 elements, XHTML content included
MAX_AUTHOR_CHARS = 512
_ENTITY_DECL = b"<!ENTITY"
_FIRST_ELEMENT = re.compile(rb"<\w")  # where feedparser's replace_doctype ends its "head"

# The same groups as feedparser's patterns, bounded and without the runaway `.*` / `\s*`.
SAFE_XML_PI_ENCODING = re.compile(
    rb"""^<\?[^\n>]{0,1024}?encoding=['"]([^'"\n>]{0,64})['"][^\n>]{0,1024}?\?>"""
)
SAFE_ENTITY_PATTERN = re.compile(rb"^[ \t\r\f\v]*<!ENTITY([^>]{0,2048}?)>", re.MULTILINE)
SAFE_DOCTYPE_PATTERN = re.compile(rb"^[ \t\r\f\v]*<!DOCTYPE([^>]{0,2048}?)>", re.MULTILINE)


class NestingTooDeep(Exception):
    """Raised inside feedparser; parse_feed turns it into a ParseError."""


def refuse_entities(body: bytes) -> str | None:
    """Why this body is refused (it declares an XML entity, or its encoding declaration
    cannot even be decoded), else None. Costs one decode and one memchr-speed find."""
    try:
        data = feedparser.encodings.convert_to_utf8({}, body, {})
    except Exception as exc:  # feedparser.parse would raise the same (encoding="\x00")
        return f"the encoding declaration cannot be read ({type(exc).__name__})"
    i = data.find(_ENTITY_DECL)
    if i < 0:
        return None  # every real feed
    m = _FIRST_ELEMENT.search(data)
    head_end = m.start() if m else len(data)
    while i >= 0:
        if i < head_end or not _inside_cdata(data, i, head_end):
            return "the feed declares XML entities (<!ENTITY): refused, as an expansion attack"
        i = data.find(_ENTITY_DECL, i + 1)
    return None


def _inside_cdata(data: bytes, i: int, start: int) -> bool:
    pos = start
    while True:
        c = data.find(b"<![CDATA[", pos, i)
        if c < 0:
            return False
        end = data.find(b"]]>", c + 9)
        if end < 0 or end > i:
            return True
        pos = end + 3


# What harden_feedparser replaces, as feedparser ships it (for unharden_feedparser).
_PATCHED = (
    (feedparser.encodings, "RE_XML_PI_ENCODING"),
    (feedparser.sanitizer, "RE_ENTITY_PATTERN"),
    (feedparser.sanitizer, "RE_DOCTYPE_PATTERN"),
    (_FeedParserMixin, "unknown_starttag"),
    (_FeedParserMixin, "_sync_author_detail"),
)
_SHIPPED = [(owner, name, getattr(owner, name)) for owner, name in _PATCHED]


def unharden_feedparser() -> None:
    """feedparser as shipped, for benchmarks that measure it (bench/parse.py); never in the
    daemon."""
    for owner, name, value in _SHIPPED:
        setattr(owner, name, value)


def check_depth(parser: Any) -> None:
    """Before an element starts (feedparser's unknown_starttag, and feedsax's own)."""
    if parser.depth >= MAX_DEPTH:
        raise NestingTooDeep(f"elements nested deeper than {MAX_DEPTH}")


def harden_feedparser() -> None:
    """Install the bounds above; idempotent."""
    feedparser.encodings.RE_XML_PI_ENCODING = SAFE_XML_PI_ENCODING
    feedparser.sanitizer.RE_ENTITY_PATTERN = SAFE_ENTITY_PATTERN
    feedparser.sanitizer.RE_DOCTYPE_PATTERN = SAFE_DOCTYPE_PATTERN
    mixin: Any = _FeedParserMixin
    if getattr(mixin.unknown_starttag, "_monitor", False):
        return
    starttag = mixin.unknown_starttag
    sync_author = mixin._sync_author_detail

    def unknown_starttag(self: Any, tag: str, attrs: Any) -> Any:
        check_depth(self)
        return starttag(self, tag, attrs)

    def _sync_author_detail(self: Any, key: str = "author") -> Any:
        context = self._get_context()
        value = context.get(key)
        if isinstance(value, str) and len(value) > MAX_AUTHOR_CHARS:
            context[key] = value[:MAX_AUTHOR_CHARS]
        return sync_author(self, key)

    unknown_starttag._monitor = True  # type: ignore[attr-defined]
    mixin.unknown_starttag = unknown_starttag
    mixin._sync_author_detail = _sync_author_detail


harden_feedparser()
