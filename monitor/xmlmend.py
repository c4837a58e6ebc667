"""One breakage of real feeds mended in the bytes, so that feedparser's strict parser reads them.

A bare `&` in an attribute value (the Guardian: unescaped in `media:content` URLs, and in
"Television & radio") makes a feed not well-formed, and feedparser parses it a second time with
its loose parser: pure Python, slower (the Guardian's 150 kB: 46 against 34 ms once mended) and
weaker on namespaces. Inside a start tag a `&` that starts no reference is escaped, and so is a
`&` before a space anywhere: the loose parser reads both as the character `&`, so the items are
the same (tests/test_xmlmend.py compares them, over the corpus and generated feeds).

Only that. Another bare `&` in text, or a raw control character, is left for the loose parser,
which reads them differently from the strict one (`&copy=3` becomes `©=3`, `AT&T` becomes `AT&T;`, a
control character stays in a guid): mending those would change the identity of items stored
before, and alert on them again. Also left as they are: a document with a DOCTYPE (its DTD may
name HTML entities, which the strict parser would skip without a word once the document is
well-formed), one whose declared encoding is not one where the byte 0x26 is always `&` (UTF-16
or 32, EBCDIC, HZ, ISO-2022, UTF-7 ...), and one with more than MAX_MENDS to escape.
"""

from __future__ import annotations

import re

MAX_MENDS = 10_000  # bare `&` escaped in one body, at most (each adds 4 bytes)

_START_TAG = re.compile(rb"<[A-Za-z_][^<>]*>")
_BARE_AMP = re.compile(rb"&(?!#[0-9]+;|#[xX][0-9a-fA-F]+;|[A-Za-z_:][-A-Za-z0-9._:]*;)")
_AMP_SPACE = re.compile(rb"&(?=[ \t\r\n])")  # "Television & radio": `&` to both parsers
_CDATA = re.compile(rb"(<!\[CDATA\[.*?\]\]>)", re.DOTALL)
_DECLARED = re.compile(
    rb"""\A(?:\xef\xbb\xbf)?<\?xml[^>]{0,200}?encoding=["']([A-Za-z0-9._-]{1,40})["']"""
)
# Encodings in which every byte below 0x80 is the ASCII character (and 0x26 always `&`).
_SAFE_ENCODINGS = re.compile(
    r"(utf-?8|us-ascii|ascii|iso-?8859-?\d{1,2}|latin-?[1-9]|(windows|cp)-?125\d|koi8-?[ru])",
    re.IGNORECASE,
)


def mend(body: bytes) -> tuple[bytes, str | None]:
    """The body with each bare `&` inside a start tag, and each one before a space, escaped;
    and what was mended (None: nothing, the same bytes object)."""
    if b"&" not in body or _BARE_AMP.search(body) is None or not _byte_safe(body):
        return body, None
    # The odd pieces of the split are CDATA sections: literal text, kept as they are. An
    # unterminated one: nothing is mended.
    pieces = _CDATA.split(body)
    if len(pieces) // 2 != body.count(b"<![CDATA["):
        return body, None
    count = 0

    def in_tag(m: re.Match[bytes]) -> bytes:
        nonlocal count
        tag, n = _BARE_AMP.subn(b"&amp;", m.group())
        count += n
        return tag

    def outside_cdata(piece: bytes) -> bytes:
        nonlocal count
        piece, n = _AMP_SPACE.subn(b"&amp;", _START_TAG.sub(in_tag, piece))
        count += n
        return piece

    mended = b"".join(p if i % 2 else outside_cdata(p) for i, p in enumerate(pieces))
    if not count or count > MAX_MENDS:
        return body, None
    return mended, f"mended: {count} bare & escaped"


def _byte_safe(body: bytes) -> bool:
    if b"\x00" in body or b"<!DOCTYPE" in body:
        return False
    m = _DECLARED.match(body)
    return m is None or _SAFE_ENCODINGS.fullmatch(m.group(1).decode("ascii")) is not None
