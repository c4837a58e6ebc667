"""feedparser's own worst cases, bounded (monitor/feedguard.py; issue 11, SPEC "Safety").

Each input here cost seconds to minutes of CPU in an unpatched feedparser 6.0, with the GIL
held. The bounds are checked as what they promise (a field cut, a depth refused) and as CPU
time measured with `time.process_time` against a limit far above what the bounded code takes
(milliseconds) and far below what the unbounded code took: a regression is a factor of 100."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable

import feedparser.encodings
import feedparser.sanitizer
import pytest
from feedparser.mixin import _FeedParserMixin

from monitor import feedguard
from monitor.errors import ParseError
from monitor.parse import parse_feed
from monitor.records import ParsedFeed

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
CPU_LIMIT = 1.0  # seconds; the unbounded cases below took 5 s to 74 s


def rss(body: str = "", *, first_line: str = "<?xml version='1.0' encoding='utf-8'?>") -> bytes:
    return (
        f"{first_line}<rss version='2.0'><channel><title>c</title>"
        "<link>https://e.example.org/</link><item><title>t</title>"
        f"<link>https://e.example.org/1</link>{body}</item></channel></rss>"
    ).encode()


def cpu(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.process_time()
    try:
        out: object = fn()
    except ParseError as exc:
        out = exc
    return time.process_time() - start, out


def parse(body: bytes) -> ParsedFeed:
    return parse_feed(body, feed_id="f", base_url="https://e.example.org/feed", fetched_at=NOW)


def test_the_bounds_are_installed_where_feedparser_looks_for_them() -> None:
    # An upgrade of feedparser that moves these internals fails here, not in production.
    assert feedparser.encodings.RE_XML_PI_ENCODING is feedguard.SAFE_XML_PI_ENCODING
    assert feedparser.sanitizer.RE_ENTITY_PATTERN is feedguard.SAFE_ENTITY_PATTERN
    assert feedparser.sanitizer.RE_DOCTYPE_PATTERN is feedguard.SAFE_DOCTYPE_PATTERN
    assert getattr(_FeedParserMixin.unknown_starttag, "_monitor", False)
    feedguard.harden_feedparser()  # idempotent: not wrapped twice
    assert getattr(_FeedParserMixin.unknown_starttag, "_monitor", False)


@pytest.mark.parametrize("size", [36_000, 80_000])
def test_a_redos_shaped_author_is_cut_before_the_email_regex(size: int) -> None:
    # 36,000 characters cost 5 s, 80 kB 25 s (quadratic e-mail regex of _sync_author_detail).
    seconds, parsed = cpu(lambda: parse(rss(f"<author>{'a' * size}</author>")))
    assert isinstance(parsed, ParsedFeed), parsed
    [item] = parsed.items
    assert item.author is not None and len(item.author) <= feedguard.MAX_AUTHOR_CHARS
    assert seconds < CPU_LIMIT, f"{seconds:.2f} s of CPU"


def test_a_real_author_keeps_its_name_and_email() -> None:
    parsed = parse(rss("<author>desk@e.example.org (News Desk)</author>"))
    assert "News Desk" in (parsed.items[0].author or "")


def test_a_long_failing_first_line_is_read_in_linear_time() -> None:
    # RE_XML_PI_ENCODING is cubic in a first line with no closing "?>" (30 kB: 74 s).
    line = "<?xml version='1.0' " + "encoding='a' " * 2_000  # unbounded: about 20 s
    seconds, _ = cpu(lambda: parse(rss(first_line=line)))
    assert seconds < CPU_LIMIT, f"{seconds:.2f} s of CPU"


def test_blank_lines_before_the_root_are_read_in_linear_time() -> None:
    # RE_ENTITY_PATTERN and RE_DOCTYPE_PATTERN: quadratic in blank lines before the root.
    body = rss(first_line="<?xml version='1.0'?>" + " \n" * 40_000)
    seconds, parsed = cpu(lambda: parse(body))
    assert isinstance(parsed, ParsedFeed) and len(parsed.items) == 1
    assert seconds < CPU_LIMIT, f"{seconds:.2f} s of CPU"


def test_the_encoding_declaration_still_works() -> None:
    body = b"<?xml version='1.0' encoding='iso-8859-1'?>" + rss(
        "<description>café</description>", first_line=""
    ).replace("café".encode(), "café".encode("latin-1"))
    assert re.match(feedguard.SAFE_XML_PI_ENCODING, body)
    assert parse(body).items[0].summary == "café"


@pytest.mark.parametrize("depth", [feedguard.MAX_DEPTH + 10, 10_000])
def test_nesting_past_the_cap_is_refused(depth: int) -> None:
    seconds, out = cpu(lambda: parse(rss("<x>" * depth + "</x>" * depth)))
    assert isinstance(out, ParseError) and "nested deeper" in str(out), out
    assert seconds < CPU_LIMIT, f"{seconds:.2f} s of CPU"


def test_nesting_a_real_feed_uses_is_read() -> None:
    depth = 60  # XHTML content in Atom: real feeds stay under 40
    parsed = parse(rss("<x>" * depth + "deep" + "</x>" * depth))
    assert len(parsed.items) == 1


@pytest.mark.parametrize(
    "decl",
    [
        '<!DOCTYPE rss [<!ENTITY a "lol">]>',
        '<!DOCTYPE rss [<!ENTITY a SYSTEM "file:///etc/passwd">]>',
        '<!-- <!ENTITY hidden "x"> -->',
    ],
)
def test_entity_declarations_are_refused_before_feedparser(decl: str) -> None:
    body = rss(first_line=f"<?xml version='1.0'?>{decl}")
    with pytest.raises(ParseError, match="ENTITY"):
        parse(body)


def test_an_entity_declaration_in_utf16_is_refused_too() -> None:
    text = (
        "<?xml version='1.0' encoding='utf-16'?><!DOCTYPE rss [<!ENTITY a 'x'>]>"
        + rss(first_line="").decode()
    )
    with pytest.raises(ParseError, match="ENTITY"):
        parse(text.encode("utf-16"))


def test_entity_text_inside_cdata_content_is_literal_and_passes() -> None:
    parsed = parse(rss("<description><![CDATA[write <!ENTITY x 'y'> to declare]]></description>"))
    assert "to declare" in parsed.items[0].summary
