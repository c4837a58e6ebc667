"""Bare `&` and raw control characters are mended so that the strict parser reads the feed, and
the items are the ones the loose parser gave."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from monitor import parse
from monitor.parse import parse_feed
from monitor.xmlmend import mend

CORPUS = Path(__file__).parent / "data" / "corpus"
FETCHED_AT = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
FIELDS = ("guid", "url", "title", "summary", "content", "author", "categories", "source")
FIELDS += ("language", "published_at", "content_hash")


def test_control_characters_are_dropped() -> None:
    body, what = mend(b"<rss><title>su\x07pe\x1fr\tb\n</title></rss>")
    assert body == b"<rss><title>super\tb\n</title></rss>"
    assert what == "mended: control characters dropped"


def test_a_bare_ampersand_is_escaped_and_references_are_left() -> None:
    body, what = mend(b'<a href="x?a=1&b=2">AT&T &amp; &#38; &#x26; &nbsp; &a.b-c; & </a>')
    assert body == b'<a href="x?a=1&amp;b=2">AT&amp;T &amp; &#38; &#x26; &nbsp; &a.b-c; &amp; </a>'
    assert what == "mended: bare & escaped"


def test_an_ampersand_in_cdata_is_literal_text() -> None:
    raw = b"<d><![CDATA[R&B & soul]]> and R&B</d>"
    assert mend(raw) == (b"<d><![CDATA[R&B & soul]]> and R&amp;B</d>", "mended: bare & escaped")
    only_cdata = b"<d><![CDATA[R&B]]></d>"
    assert mend(only_cdata) == (only_cdata, None)


def test_nothing_to_mend_is_the_same_bytes() -> None:
    raw = b"<rss><channel><title>A &amp; B</title></channel></rss>"
    body, what = mend(raw)
    assert body is raw and what is None


@pytest.mark.parametrize(
    "raw",
    [
        "<rss><t>a & b\x07</t></rss>".encode("utf-16"),  # NUL bytes: not an ASCII encoding
        b"<rss><t>\x1b$B0\x1b(B & \x07</t></rss>",  # ISO-2022-JP's escapes
        b"\x4c\x6f\xa7\x94 & \x07",  # EBCDIC
        b"<d><![CDATA[a & b</d>",  # an unterminated CDATA section: its & stays
    ],
)
def test_bytes_the_mends_cannot_be_sure_of_are_left(raw: bytes) -> None:
    body, _ = mend(raw)
    assert b"&amp;" not in body
    if b"\x00" in raw or b"\x1b" in raw or raw.startswith(b"\x4c\x6f"):
        assert body == raw


def _items(body: bytes) -> list[tuple[object, ...]]:
    result = parse_feed(body, feed_id="f", base_url="https://example.org/f", fetched_at=FETCHED_AT)
    return [tuple(getattr(item, f) for f in FIELDS) for item in result.items]


def test_mended_corpus_feeds_give_the_items_the_loose_parser_gave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mended = {}
    for path in sorted(CORPUS.glob("*.xml")):
        raw = path.read_bytes()
        if mend(raw)[1] is not None:
            mended[path.name] = raw
    assert {"elpais_portada_mrss_mock.xml", "guardian_world_ukraine_war.xml"} <= set(mended)
    for name, raw in mended.items():
        result = parse_feed(
            raw, feed_id="f", base_url="https://example.org/f", fetched_at=FETCHED_AT
        )
        assert result.bozo is not None and result.bozo.startswith("mended"), name  # strict
        ours = _items(raw)
        with monkeypatch.context() as m:
            m.setattr(parse, "mend", lambda body: (body, None))
            loose = _items(raw)
        assert len(ours) == len(loose) > 0, name
        assert ours == loose, name


def test_a_feed_with_both_breakages_is_read_by_the_strict_parser() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        b"<item><title>Missile\x07 test</title><link>https://example.org/a?x=1&y=2</link>"
        b"<guid>g1</guid><description>R&D</description></item></channel></rss>"
    )
    result = parse_feed(body, feed_id="f", base_url=None, fetched_at=FETCHED_AT)
    assert result.bozo == "mended: control characters dropped, bare & escaped"
    (item,) = result.items
    assert (item.title, item.url, item.summary) == (
        "Missile test",
        "https://example.org/a?x=1&y=2",
        "R&D",
    )
