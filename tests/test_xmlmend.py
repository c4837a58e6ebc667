"""A bare `&` in an attribute value is escaped so that the strict parser reads the feed, and
the items are exactly the ones the loose parser gave: nothing stored before changes identity."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import parse
from monitor.errors import ParseError
from monitor.parse import parse_feed
from monitor.xmlmend import MAX_MENDS, mend

CORPUS = Path(__file__).parent / "data" / "corpus"
FETCHED_AT = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
FIELDS = ("guid", "url", "title", "summary", "content", "author", "categories", "source")
FIELDS += ("language", "published_at", "content_hash")


def rss(item: bytes, head: bytes = b'<?xml version="1.0" encoding="utf-8"?>') -> bytes:
    return (
        head + b'<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>'
        b"<title>T</title><link>https://example.org/</link><item>" + item + b"</item>"
        b"</channel></rss>"
    )


def test_a_bare_ampersand_in_an_attribute_is_escaped() -> None:
    body = rss(b'<title>t</title><media:content url="https://i.org/a.jpg?w=1&q=85&amp;x=1"/>')
    mended, what = mend(body)
    assert b'url="https://i.org/a.jpg?w=1&amp;q=85&amp;x=1"' in mended
    assert what == "mended: 1 bare & escaped"


@pytest.mark.parametrize(
    "body",
    [
        rss(b"<title>AT&T &copy 2020</title><guid>https://e.org/?p=1&q=2</guid>"),  # text
        rss(b"<title>su\x07per</title><guid>abc\x1fdef</guid>"),  # control characters
        rss(b'<title>t</title><media:content url="a&b"/><d><![CDATA[R&B]]></d>'),  # no: text's
        b'<!DOCTYPE rss SYSTEM "x.dtd"><rss><channel><item><title>caf&eacute;</title>'
        b'<link href="a&b"/></item></channel></rss>',  # a DTD may name HTML's entities
        rss(b'<title>t</title><x y="a&b"/>', head=b'<?xml version="1.0" encoding="hz-gb-2312"?>'),
        rss(b'<title>t</title><x y="a&b"/>').decode().encode("utf-16"),
        b'<rss><d><![CDATA[a <x y="&"> b</d></rss>',  # an unterminated CDATA section
    ],
)
def test_what_the_strict_parser_would_read_otherwise_is_left(body: bytes) -> None:
    mended, what = mend(body)
    if b'url="a&b"/><d>' in body:  # the attribute is mended; the CDATA section is not
        assert b"<![CDATA[R&B]]>" in mended and what is not None
    else:
        assert (mended, what) == (body, None)


def test_nothing_to_mend_is_the_same_bytes() -> None:
    raw = rss(b"<title>A &amp; B</title>")
    body, what = mend(raw)
    assert body is raw and what is None


def test_too_many_to_mend_is_left_to_the_loose_parser() -> None:
    body = rss(b'<x y="' + b"&" * (MAX_MENDS + 1) + b'"/>')
    assert mend(body) == (body, None)


def _items(body: bytes) -> Any:
    try:
        result = parse_feed(body, feed_id="f", base_url="https://e.org/f", fetched_at=FETCHED_AT)
    except ParseError as exc:
        return repr(exc)
    return [tuple(getattr(item, f) for f in FIELDS) for item in result.items]


def _both_ways(body: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    ours = _items(body)
    with monkeypatch.context() as m:
        m.setattr(parse, "mend", lambda b: (b, None))
        loose = _items(body)
    return ours, loose


def test_mended_corpus_feeds_give_the_items_the_loose_parser_gave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mended = [p for p in sorted(CORPUS.glob("*.xml")) if mend(p.read_bytes())[1] is not None]
    assert [p.name for p in mended] == ["guardian_world_ukraine_war.xml"]
    for path in mended:
        raw = path.read_bytes()
        result = parse_feed(raw, feed_id="f", base_url="https://e.org/f", fetched_at=FETCHED_AT)
        assert result.bozo is not None and result.bozo.startswith("mended"), path.name  # strict
        ours, loose = _both_ways(raw, monkeypatch)
        assert isinstance(ours, list) and len(ours) > 0
        assert ours == loose, path.name


_PIECES = st.sampled_from(
    [
        b"<title>t</title>",
        b"<guid>https://e.org/?p=1&q=2</guid>",
        b"<title>AT&T &copy</title>",
        b"<link>https://e.org/a?b=1&c=2</link>",
        b'<media:content url="https://i/a?w=1&q=2"/>',
        b'<media:thumbnail url="x&amp;y&z" width="1"/>',
        b"<description>R&D &amp; more</description>",
        b"<description><![CDATA[<p>R&B & soul</p>]]></description>",
        b"<title>su\x07per</title>",
        b"<guid>abc\x1fdef</guid>",
        b'<enclosure url="a&b" type="image/jpeg"/>',
        b" & ",
        b"&#38;",
        b'<category domain="a&b">c&d</category>',
        b"<title>&lt;b&gt;x&lt;/b&gt;</title>",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(_PIECES, min_size=1, max_size=6), min_size=1, max_size=4))
def test_a_mended_feed_gives_the_items_the_loose_parser_gave(items: list[list[bytes]]) -> None:
    body = rss(b"</item><item>".join(b"".join(parts) for parts in items))
    with pytest.MonkeyPatch.context() as m:
        ours, loose = _both_ways(body, m)
    assert ours == loose


def test_an_entity_declaration_hidden_by_a_control_character_is_not_expanded() -> None:
    big = b"A" * 3000
    body = (
        b'<?xml version="1.0"?><!DOCTYPE rss [<!EN\x07TITY big "' + big + b'">]><rss version="2.0">'
        b"<channel><item><title>t</title><description>" + b"&big;" * 2500 + b"</description>"
        b"</item></channel></rss>"
    )
    assert mend(body) == (body, None)
    try:
        result = parse_feed(body, feed_id="f", base_url=None, fetched_at=FETCHED_AT)
    except ParseError:
        return
    assert all(len(item.summary) + len(item.content) < 100_000 for item in result.items)
