"""The fast paths of the HTML-to-text step give what the slow ones give.

`html_to_text` reads fragments made only of simple, nested tags without lexbor, and `tidy`
runs each of its patterns only where it would match. Both are checked against the full path:
over generated input (hypothesis) and over every HTML field of the corpus.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.normalize import text as T

CORPUS = Path(__file__).parent / "data" / "corpus"
SETTINGS = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))


def finish(text: str) -> str:
    """What html_to_text does with either path's text."""
    return T.tidy(T._unescape_leftovers(" ".join(text.split()).replace(T._BREAK, "\n")))


def both_ways(html: str) -> tuple[str, str] | None:
    """(fast, parsed) text of a fragment, or None when the fast path declines it."""
    html = T.cut_html(html, T.MAX_HTML, T.MAX_TAGS).replace(T._BREAK, "")
    fast = T._simple_text(html)
    if fast is None:
        return None
    return finish(fast), finish(T._parsed_text(html))


_NAMES = [*sorted(T._SIMPLE_BLOCK | T._SIMPLE_INLINE), "table", "td", "pre", "script", "P", "Br"]
_ATTRS = ["", ' href="x>y"', " class='a b'", " id=x", " data-x", ' title="a<b"', ' t="&amp;"']
_TAGS = st.builds(
    lambda end, name, attr, close: f"<{end}{name}{attr}{close}>",
    st.sampled_from(["", "/"]),
    st.sampled_from(_NAMES),
    st.sampled_from(_ATTRS),
    st.sampled_from(["", "/", " /"]),
)
_TEXTS = st.sampled_from(
    [
        "a",
        "b c",
        " ",
        "\n",
        "\t",
        "\r\n",
        "\xa0",
        "\u200b",
        "é",
        "<",
        ">",
        "&",
        "AT&T",
        "&amp;",
        "&amp",
        "&lt;p&gt;",
        "&nbsp;",
        "&#233;",
        "&#x80;",
        "&#0;",
        "&copy2",
        "&notit;",
        "&am",
        "p;",
        "&amp;#233;",
        "<!-- c -->",
        "x > y",
    ]
)
FRAGMENTS = st.lists(st.one_of(_TAGS, _TEXTS), max_size=25).map("".join)


@SETTINGS
@given(FRAGMENTS)
def test_the_fast_html_path_reads_what_the_parser_reads(html: str) -> None:
    result = both_ways(html)
    if result is not None:
        assert result[0] == result[1]


def _corpus_html() -> Iterator[str]:
    for path in sorted(CORPUS.glob("*.xml")):
        parsed = feedparser.parse(
            io.BytesIO(path.read_bytes()), sanitize_html=False, resolve_relative_uris=False
        )
        for entry in parsed.entries:
            values = [entry.get("title", ""), entry.get("summary", "")]
            values += [c.get("value", "") for c in entry.get("content", [])]
            yield from (v for v in values if "<" in v)


def test_the_fast_html_path_reads_the_corpus_as_the_parser_does() -> None:
    fields = list(_corpus_html())
    results = [both_ways(html) for html in fields]
    fast = [r for r in results if r is not None]
    assert len(fields) > 500
    assert len(fast) > 0.9 * len(fields)  # the usual fragment takes it
    assert [f for f, p in fast if f != p] == []
    assert sum(f == p for f, p in fast) == len(fast)


@pytest.mark.parametrize(
    "html",
    [
        "a</address>a",  # a stray end tag: the parser ignores it
        "<p>a<div>b</div>c</p>",  # <div> closes the <p>
        "<li>a<li>b</li>c</li>d",  # the second <li> closes the first
        "<b><p>x</b>y</p>",  # misnested
        "a</hr>b",  # an end tag of a void element
        "<table><td>a</td></table>b",  # tables move text
        "a <!-- b --> c",
        "x < y <b>z</b>",
        "<pre>\na</pre>",
        "<h1>a<h2>b</h2></h1>",
        "<a href=x>a<a href=y>b</a></a>",
    ],
)
def test_fragments_the_parser_would_restructure_go_to_the_parser(html: str) -> None:
    assert T._simple_text(html) is None


def test_simple_fragments_take_the_fast_path() -> None:
    html = '<p>One <a href="/x?a=1&amp;b=2">two</a>&nbsp;three<br/>four</p><ul><li>five</li></ul>'
    assert T._simple_text(html) is not None
    assert T.html_to_text(html) == "One two\xa0three\nfour\nfive".replace("\xa0", " ")


# --- tidy ----------------------------------------------------------------------------------

_HSPACE = re.compile(r"[^\S\n]{2,}|[^\S \n]")
_NEWLINES = re.compile(r" \n[ \n]*|\n[ \n]+")


def tidy_reference(text: str) -> str:
    """tidy as it was: every pattern over every text."""
    text = T._INVISIBLE.sub("", text)
    text = _HSPACE.sub(" ", text)
    return _NEWLINES.sub("\n", text).strip()


_SPACES = st.text(
    alphabet=st.sampled_from(
        list(" \n\t\r\x0b\x0c\xa0\u2003\u3000\u200b\u2060\ufeff\x85\x7f\x9f\u2028abé\x01\ue000")
    ),
    max_size=30,
)


@SETTINGS
@given(_SPACES)
def test_tidy_gives_what_running_every_pattern_gives(text: str) -> None:
    assert T.tidy(text) == tidy_reference(text)


@SETTINGS
@given(st.one_of(_SPACES, FRAGMENTS))
def test_plain_text_gives_what_running_every_pattern_gives(text: str) -> None:
    """plain_to_text's shortcut for text with nothing to decode, against its general case."""
    if T._TAG_LIKE.search(text):
        expected = T.html_to_text(text)
    else:
        decoded = text
        if "&" in text and T._ENTITY_LIKE.search(text):
            decoded = T._unescape_leftovers(T.htmllib.unescape(text))
        expected = tidy_reference(decoded[: T.MAX_HTML])[: T.MAX_TEXT]
    assert T.plain_to_text(text) == expected


def test_a_printable_line_holds_no_invisible_character_and_no_space_but_the_space() -> None:
    """What tidy's and plain_to_text's shortcuts rest on, over every code point."""
    printable = [c for c in map(chr, range(0x110000)) if c.isprintable()]
    assert not [c for c in printable if T._INVISIBLE.match(c) or (c.isspace() and c != " ")]


def test_odd_space_is_every_whitespace_but_space_and_newline() -> None:
    spaces = {c for c in map(chr, range(0x110000)) if c.isspace()}
    assert {c for c in spaces if T._ODD_SPACE.fullmatch(c)} == spaces - {" ", "\n"}


@SETTINGS
@given(FRAGMENTS)
def test_html_to_text_gives_what_the_parser_and_every_pattern_give(html: str) -> None:
    """The whole function against its slow form: lexbor's text, then all of tidy's patterns."""
    cut = T.cut_html(html, T.MAX_HTML, T.MAX_TAGS)
    if "<" not in cut:
        return  # the no-markup path is tidy's own (above)
    text = T._parsed_text(cut.replace(T._BREAK, ""))
    text = " ".join(text.split()).replace(T._BREAK, "\n")
    assert T.html_to_text(html) == tidy_reference(T._unescape_leftovers(text))[: T.MAX_TEXT]


# --- page chrome's whole-line patterns -----------------------------------------------------

_LINES = st.lists(
    st.sampled_from(
        [
            *("join now", "JOIN NOW!", "Join Now", "join", " now", "rejoin now", "x", " ", "©"),
            *("Home | News", "Breaking news:", "subscribe", "Read more", "the post", "appeared"),
            *("first on", "a" * 150, "é", "\u0130", "ı", "-", "Copyright 2020 x", "2024"),
        ]
    ),
    max_size=12,
).map("".join)


@SETTINGS
@given(_LINES)
def test_the_boilerplate_line_patterns_match_as_one_regex_does(line: str) -> None:
    from monitor.normalize import chrome

    for patterns, fast in (
        (chrome.LEADING_BOILERPLATE, chrome._LEADING_RE),
        (chrome.TRAILING_BOILERPLATE, chrome._TRAILING_RE),
    ):
        one = re.compile("|".join(f"(?:{p})" for p in patterns), re.I)
        assert fast.fullmatch(line) == (one.fullmatch(line) is not None)
