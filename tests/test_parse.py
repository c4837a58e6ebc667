"""Unit tests of the parse stage: canonical URLs, HTML to text, identity, dates, the seed page.

Table-like cases live in tests/data/normalize_cases.yaml (name, input, expected).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import time
from pathlib import Path
from typing import Any

import feedparser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from monitor import normalize, parse
from monitor.errors import ParseError
from monitor.parse import canonical_url, html_to_text, parse_feed
from monitor.records import ParsedFeed

ROOT = Path(__file__).resolve().parent.parent
CASES = YAML(typ="safe").load((ROOT / "tests" / "data" / "normalize_cases.yaml").read_text())
SEED_FEED = ROOT / "seeds" / "feeds" / "seed.xml"
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
UTC = dt.UTC


def rss(items: str, channel: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        f"<title>Test feed</title><link>https://example.org/</link>{channel}{items}"
        "</channel></rss>"
    ).encode()


def parse_one(items: str, channel: str = "", **kw: Any) -> ParsedFeed:
    kw.setdefault("feed_id", "t")
    kw.setdefault("base_url", "https://example.org/feed.xml")
    kw.setdefault("fetched_at", NOW)
    return parse_feed(rss(items, channel), **kw)


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# --- table cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES["canonical_url"], ids=lambda c: c["name"])
def test_canonical_url(case: dict[str, Any]) -> None:
    assert canonical_url(case["url"], case.get("base")) == case["expected"]


@pytest.mark.parametrize("case", CASES["html_to_text"], ids=lambda c: c["name"])
def test_html_to_text(case: dict[str, Any]) -> None:
    assert html_to_text(case["html"]) == case["expected"]


@pytest.mark.parametrize("case", CASES["dateline"], ids=lambda c: c["line"])
def test_dateline(case: dict[str, Any]) -> None:
    assert iso(normalize.parse_dateline(case["line"])) == case["expected"]


@pytest.mark.parametrize("case", CASES["loose_date"], ids=lambda c: c["raw"] or "empty")
def test_loose_date(case: dict[str, Any]) -> None:
    assert iso(normalize.parse_loose_date(case["raw"])) == case["expected"]


# --- feedparser is only ever given bytes ---------------------------------------------------


def test_feedparser_gets_a_byte_stream_never_a_str(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    real = feedparser.parse

    def spy(source: object, *args: Any, **kwargs: Any) -> Any:
        seen.append(source)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(parse.feedparser, "parse", spy)
    parse_one("<item><title>a</title></item>")
    assert len(seen) == 1
    assert isinstance(seen[0], io.BytesIO)


def test_a_str_body_is_refused_before_feedparser(monkeypatch: pytest.MonkeyPatch) -> None:
    # feedparser would read a str as a path or URL and open it.
    monkeypatch.setattr(parse.feedparser, "parse", lambda *a, **k: pytest.fail("called"))
    with pytest.raises(TypeError):
        parse_feed("https://example.org/feed.xml", feed_id="t", base_url=None, fetched_at=NOW)  # type: ignore[arg-type]


# --- not a feed / empty feed / hostile XML ---------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\x00\x01\x02 garbage \xff\xfe",
        b"<!DOCTYPE html><html><head><title>Not found</title></head>"
        b"<body><h1>404</h1><p>Page not found</p></body></html>",
        b'{"items": [{"title": "json is not a feed"}]}',
    ],
    ids=["empty", "garbage", "html-page", "json"],
)
def test_not_a_feed_raises_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_feed(body, feed_id="t", base_url=None, fetched_at=NOW)


def test_empty_channel_is_a_valid_feed() -> None:
    result = parse_one("")
    assert result == ParsedFeed(title="Test feed", items=[], bozo=None)


def test_bozo_is_a_short_message() -> None:
    body = rss("<item><title>a &nbsp; b</title></item>")  # undefined entity in XML
    result = parse_feed(body, feed_id="t", base_url=None, fetched_at=NOW)
    assert result.bozo is not None and len(result.bozo) <= 200
    assert [i.title for i in result.items] == ["a b"]


def test_entity_expansion_is_refused() -> None:
    decl = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{f"&a{i - 1};" * 10}">' for i in range(1, 10)
    )
    body = (
        f'<?xml version="1.0"?><!DOCTYPE rss [{decl}]>'
        '<rss version="2.0"><channel><item><title>&a9;</title><link>https://e.org/x</link>'
        "</item></channel></rss>"
    ).encode()
    # Refused before feedparser sees it (SPEC: hostile XML is the feed's failure, never items).
    started = time.perf_counter()
    with pytest.raises(ParseError, match="ENTITY"):
        parse_feed(body, feed_id="t", base_url=None, fetched_at=NOW)
    assert time.perf_counter() - started < 2


def test_text_fields_are_capped() -> None:
    huge = "<p>" + "word " * 60_000 + "</p>"
    result = parse_one(
        f"<item><title>{'t' * 5000}</title><link>https://e.org/a</link>"
        f"<description><![CDATA[{huge}]]></description>"
        f"<content:encoded><![CDATA[{huge}<p>more</p>]]></content:encoded></item>"
    )
    (item,) = result.items
    assert len(item.title) <= normalize.MAX_TITLE
    assert len(item.summary) <= normalize.MAX_TEXT
    assert len(item.content) <= normalize.MAX_TEXT


# --- fields ----------------------------------------------------------------------------------


def test_fields_of_a_plain_rss_item() -> None:
    result = parse_one(
        "<item><title>North Korea fires missile</title>"
        "<link>https://news.example.org/a?utm_source=rss&amp;id=3#top</link>"
        '<guid isPermaLink="false">abc-1</guid>'
        "<pubDate>Tue, 18 Jun 2019 16:01:00 +0900</pubDate>"
        "<dc:creator>Jane Analyst</dc:creator>"
        "<category>Asia</category><category>Defence</category><category>asia</category>"
        "<description>&lt;p&gt;Pyongyang fired a &lt;b&gt;short-range&lt;/b&gt; missile.&lt;/p&gt;"
        "&lt;p&gt;Seoul said so.&lt;/p&gt;</description></item>",
        channel="<language>en-GB</language>",
    )
    (item,) = result.items
    assert item.feed_id == "t"
    assert item.guid == "abc-1"
    assert item.url == "https://news.example.org/a?id=3"
    assert item.title == "North Korea fires missile"
    assert item.summary == "Pyongyang fired a short-range missile.\nSeoul said so."
    assert item.content == ""
    assert item.author == "Jane Analyst"
    assert item.categories == ("Asia", "Defence")
    assert item.source is None
    assert item.language == "en"
    assert item.published_at == dt.datetime(2019, 6, 18, 7, 1, tzinfo=UTC)
    assert len(item.content_hash) == 64


def test_identical_summary_and_content_are_not_duplicated() -> None:
    text = "&lt;p&gt;Same text.&lt;/p&gt;"
    (item,) = parse_one(
        f"<item><title>t</title><description>{text}</description>"
        f"<content:encoded>{text}</content:encoded></item>"
    ).items
    assert (item.summary, item.content) == ("Same text.", "")


def test_content_only_becomes_the_summary() -> None:
    (item,) = parse_one(
        "<item><title>t</title><content:encoded>&lt;p&gt;Body.&lt;/p&gt;</content:encoded></item>"
    ).items
    assert (item.summary, item.content) == ("Body.", "")


def test_rss_source_names_the_publisher_and_leaves_the_title() -> None:
    (item,) = parse_one(
        "<item><title>Xi to visit Pyongyang - Yonhap News Agency</title>"
        '<source url="https://en.yna.co.kr">Yonhap News Agency</source></item>'
    ).items
    assert item.source == "Yonhap News Agency"
    assert item.title == "Xi to visit Pyongyang"


def test_dc_publisher_is_the_source() -> None:
    (item,) = parse_one(
        "<item><title>t</title><dc:publisher>Iran Press TV</dc:publisher></item>"
    ).items
    assert item.source == "Iran Press TV"


def test_feedburner_origlink_is_preferred() -> None:
    body = (
        b'<rss version="2.0" xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0">'
        b"<channel><title>f</title><item><title>t</title>"
        b"<link>http://feeds.example.org/~r/x/~3/abc/story.html</link>"
        b"<feedburner:origLink>https://www.example.org/story.html?feedType=RSS</feedburner:origLink>"
        b"</item></channel></rss>"
    )
    (item,) = parse_feed(body, feed_id="t", base_url=None, fetched_at=NOW).items
    assert item.url == "https://www.example.org/story.html"


def test_relative_links_resolve_against_the_feed_url() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>f</title><entry><id>e1</id>'
        b'<title>t</title><link href="/2024/12/18/post.html"/></entry></feed>'
    )
    (item,) = parse_feed(
        body, feed_id="t", base_url="https://blog.example.org/feed.xml", fetched_at=NOW
    ).items
    assert item.url == "https://blog.example.org/2024/12/18/post.html"


def test_xml_base_resolves_relative_links() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://example.org/news/">'
        b'<title>f</title><entry xml:base="2019/"><id>e1</id><title>t</title>'
        b'<link href="story.html"/></entry></feed>'
    )
    (item,) = parse_feed(body, feed_id="t", base_url=None, fetched_at=NOW).items
    assert item.url == "https://example.org/news/2019/story.html"


def test_entry_without_anything_is_dropped_and_untitled_entry_gets_a_title() -> None:
    result = parse_one(
        "<item></item>"
        "<item><description>A long first sentence that names the story. Then more.</description>"
        "</item>"
    )
    assert [i.title for i in result.items] == [
        "A long first sentence that names the story. Then more."
    ]


def test_language_subtag() -> None:
    assert parse._language("en-US") == "en"
    assert parse._language("PT_br") == "pt"
    assert parse._language("mul") is None
    assert parse._language("x") is None
    assert parse._language(None) is None


def test_content_hash_ignores_case_and_spacing_but_not_words() -> None:
    a = parse.content_hash("North Korea", "fires a  missile", "")
    assert a == parse.content_hash("north korea", "fires a\nmissile", "")
    assert a != parse.content_hash("North Korea", "fires a rocket", "")


_FIELD = st.text(alphabet=st.sampled_from(list(" \n\t\xa0\u2003\u200bab\u0130ß\x01")), max_size=12)


@settings(max_examples=2000, deadline=None)
@given(_FIELD, _FIELD, _FIELD)
def test_content_hash_is_the_stored_formula(title: str, summary: str, content: str) -> None:
    """Hashes stored by every release compare with today's: the shortcut gives the same."""
    text = " ".join(f"{title}\n{summary}\n{content}".split()).casefold()
    assert parse.content_hash(title, summary, content) == hashlib.sha256(text.encode()).hexdigest()


# --- identity --------------------------------------------------------------------------------


def test_guid_fallbacks() -> None:
    result = parse_one(
        "<item><title>with guid</title><guid>urn:x:1</guid>"
        "<link>https://example.org/1</link></item>"
        "<item><title>link only</title><link>https://example.org/2?utm_medium=rss</link></item>"
        "<item><title>nothing</title><pubDate>Tue, 18 Jun 2019 16:01:00 GMT</pubDate></item>"
    )
    guids = [i.guid for i in result.items]
    assert guids[0] == "urn:x:1"
    assert guids[1] == "https://example.org/2"
    assert guids[2].startswith("sha256:") and len(guids[2]) == 7 + 64
    # the hash is of title and date: stable across polls, different for another date
    again = parse_one(
        "<item><title>nothing</title><pubDate>Tue, 18 Jun 2019 16:01:00 GMT</pubDate></item>"
    )
    other = parse_one(
        "<item><title>nothing</title><pubDate>Wed, 19 Jun 2019 16:01:00 GMT</pubDate></item>"
    )
    assert again.items[0].guid == guids[2]
    assert other.items[0].guid != guids[2]


def test_edited_text_keeps_identity() -> None:
    before = parse_one("<item><title>Old title</title><guid>g1</guid></item>").items[0]
    after = parse_one("<item><title>New title</title><guid>g1</guid></item>").items[0]
    assert before.guid == after.guid
    assert before.content_hash != after.content_hash


def _dup_items(*names: str) -> str:
    return "".join(
        f"<item><title>Story {n}</title><link>https://example.org/{n}</link>"
        "<guid>https://example.org/</guid></item>"
        for n in names
    )


def test_reused_guid_is_disambiguated_stably() -> None:
    first = parse_one(_dup_items("a", "b", "c")).items
    guids = [i.guid for i in first]
    assert len(set(guids)) == 3
    assert all(g.startswith("https://example.org/#") for g in guids)
    # next poll: a new story on top, one dropped at the bottom; the others keep their guids
    second = parse_one(_dup_items("d", "a", "b")).items
    assert {i.title: i.guid for i in second}["Story a"] == guids[0]
    assert {i.title: i.guid for i in second}["Story b"] == guids[1]


def test_the_same_entry_listed_twice_is_one_item() -> None:
    result = parse_one(_dup_items("a", "a", "b"))
    assert [i.title for i in result.items] == ["Story a", "Story b"]


# --- dates -----------------------------------------------------------------------------------


def test_epoch_dc_date() -> None:
    (item,) = parse_one("<item><title>t</title><dc:date>1518478934</dc:date></item>").items
    assert item.published_at == dt.datetime(2018, 2, 12, 23, 42, 14, tzinfo=UTC)


def test_missing_date_is_none() -> None:
    (item,) = parse_one("<item><title>t</title></item>").items
    assert item.published_at is None


def test_updated_when_no_published() -> None:
    body = (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><title>f</title><entry><id>e</id>'
        b"<title>t</title><updated>2019-06-18T16:01:00-05:00</updated></entry></feed>"
    )
    (item,) = parse_feed(body, feed_id="t", base_url=None, fetched_at=NOW).items
    assert item.published_at == dt.datetime(2019, 6, 18, 21, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("pub", "expected"),
    [
        ("Wed, 02 Dec 2026 11:00:00 GMT", "2026-12-02T11:00:00+00:00"),  # within 2 days: kept
        ("Fri, 04 Dec 2026 12:00:00 GMT", None),  # 3 days ahead: absurd
        ("Mon, 01 Jan 2035 00:00:00 GMT", None),
        ("Fri, 01 Jan 1988 00:00:00 GMT", None),  # before 1990
        ("Thu, 01 Jan 1970 00:00:00 GMT", None),
        ("soon", None),
    ],
)
def test_absurd_dates_are_missing(pub: str, expected: str | None) -> None:
    (item,) = parse_one(f"<item><title>t</title><pubDate>{pub}</pubDate></item>").items
    assert iso(item.published_at) == expected


def test_absurd_published_falls_back_to_updated() -> None:
    (item,) = parse_one(
        "<item><title>t</title><pubDate>Mon, 01 Jan 2035 00:00:00 GMT</pubDate>"
        "<dc:date>2019-06-18T16:01:00Z</dc:date></item>"
    ).items
    assert item.published_at == dt.datetime(2019, 6, 18, 16, 1, tzinfo=UTC)


@pytest.fixture
def pyongyang_tz() -> Any:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Pyongyang"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_dates_do_not_depend_on_the_machine_time_zone(pyongyang_tz: Any) -> None:
    assert time.timezone != 0  # the fixture took effect
    (item,) = parse_one(
        "<item><title>t</title><pubDate>Tue, 18 Jun 2019 16:01:00 GMT</pubDate></item>"
    ).items
    assert item.published_at == dt.datetime(2019, 6, 18, 16, 1, tzinfo=UTC)


# --- the seed page ---------------------------------------------------------------------------

SEED_TITLE = "China president's North Korea visit to send strong message to US"


@pytest.fixture(scope="module")
def seed_items() -> list[Any]:
    result = parse_feed(SEED_FEED.read_bytes(), feed_id="seed-demo", base_url=None, fetched_at=NOW)
    assert result.title == "GlobalSecurity.org-style demo"
    assert result.bozo is None
    return result.items


def test_seed_article_normalizes_to_the_story(seed_items: list[Any]) -> None:
    seed = seed_items[0]
    assert seed.title == SEED_TITLE
    assert seed.source == "Iran Press TV"
    assert seed.published_at == dt.datetime(2019, 6, 18, 16, 1, tzinfo=UTC)
    assert seed.url == (
        "https://www.globalsecurity.org/wmd/library/news/dprk/2019/dprk-190618-presstv01.htm"
    )
    assert seed.guid == seed.url  # no <guid>: the canonical url is the identity
    assert seed.content.startswith("Chinese President Xi Jinping is set to travel")
    assert seed.content.endswith("including most of its imported food and energy supplies.")
    assert seed.summary.startswith("Chinese President Xi Jinping is set to travel")
    for text in (seed.summary, seed.content):
        for junk in (
            "JOIN NOW",
            "Join the mailing list",
            "Weapons of Mass Destruction (WMD)",
            "Iran Press TV",
            "04:01PM",
            SEED_TITLE,
            "dataLayer",
            "Subscribe",
        ):
            assert junk not in text
    assert "North Korea's missile testing" in seed.content
    assert seed.language == "en"


def test_seed_article_text_is_the_seed_file_story(seed_items: list[Any]) -> None:
    paragraphs = [
        p.strip()
        for p in (ROOT / "seeds" / "seed-article.txt").read_text(encoding="utf-8").split("\n\n")
        if p.strip()
    ]
    assert seed_items[0].content == "\n".join(paragraphs[6:-1])


def test_seed_page_html_and_feed_agree() -> None:
    page = html_to_text((ROOT / "seeds" / "seed.html").read_text(encoding="utf-8"))
    story = normalize.strip_page_chrome(page, SEED_TITLE)
    assert story.publisher == "Iran Press TV"
    assert story.dateline == dt.datetime(2019, 6, 18, 16, 1, tzinfo=UTC)
    assert page.startswith("The Largest Security-Cleared Career Network")


def test_seed_feed_other_items(seed_items: list[Any]) -> None:
    # The mission's literal `North Korea + missile` (whole word) matches the seed alone; the
    # demo rule `@dprk + @missile` (missile*) also the Seoul item ("... missiles").
    import re

    def matches(item: Any, word: str) -> bool:
        text = " ".join((item.title, item.summary, item.content)).lower()
        return "north korea" in text and re.search(word, text) is not None

    assert [matches(i, r"\bmissile\b") for i in seed_items] == [True, False, False, False, False]
    assert [matches(i, r"\bmissile") for i in seed_items] == [True, False, False, False, True]
    assert len(seed_items) == 5
    assert all(i.published_at is not None for i in seed_items)


# --- page chrome in general ---------------------------------------------------------------


def test_page_chrome_with_dateline_and_publisher_below_title() -> None:
    text = "Home\nWorld\nTroops deploy\nReuters\n18 June 2019 10:00 GMT\nStory line one.\nShare"
    story = normalize.strip_page_chrome(text, "Troops deploy")
    assert story == normalize.Story(
        "Story line one.", "Reuters", dt.datetime(2019, 6, 18, 10, 0, tzinfo=UTC)
    )


def test_a_lone_section_name_above_the_title_is_not_a_publisher() -> None:
    story = normalize.strip_page_chrome("World\nTroops deploy\nThe story.", "Troops deploy")
    assert story == normalize.Story("The story.", None, None)


def test_a_short_line_below_the_title_without_dateline_stays() -> None:
    story = normalize.strip_page_chrome("Troops deploy\nLive Updates\nThe story.", "Troops deploy")
    assert story == normalize.Story("Live Updates\nThe story.", None, None)


def test_title_deep_in_the_story_is_not_a_header() -> None:
    long = "A paragraph of the story that is long enough to be story text. " * 5
    text = f"{long}\nTroops deploy\nMore story."
    assert normalize.strip_page_chrome(text, "Troops deploy").text == text


@pytest.mark.parametrize(
    "tail",
    [
        "Join the mailing list",
        "Continue reading...",
        "Read more",
        "The post Troops deploy appeared first on Example News.",
        "Subscribe to our newsletter",
        "© 2019 Example News. All rights reserved.",
        "Advertisement",
    ],
)
def test_trailing_boilerplate_dropped(tail: str) -> None:
    story = normalize.strip_page_chrome(f"The story.\n{tail}", "Other title")
    assert story.text == "The story."


def test_story_lines_that_look_like_boilerplate_mid_text_stay() -> None:
    text = "Subscribers fell.\nContinue reading the report, officials said.\nThe end."
    assert normalize.strip_page_chrome(text, "x").text == text
