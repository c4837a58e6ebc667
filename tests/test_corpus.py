"""Every feed of the real-world corpus (tests/data/corpus, provenance in SOURCES.tsv and
NOTES.tsv) through parse_feed, with invariants for all of them and golden files for some.

Golden files (tests/data/golden/<feed>.json) hold the first items' normalized fields. After a
deliberate change of behaviour, regenerate them and review the diff by eye before committing:

    MONITOR_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_corpus.py
    # or: .venv/bin/python -m tests.test_corpus --update-golden
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import feedparser
import pytest

from monitor.errors import ParseError
from monitor.parse import parse_feed
from monitor.records import ParsedFeed

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"
GOLDEN = ROOT / "tests" / "data" / "golden"
FEEDS = sorted(p.name for p in CORPUS.glob("*.xml"))
UTC = dt.UTC
# Later than every date in the corpus (some items are dated 2026), so none is "in the future".
FETCHED_AT = dt.datetime(2027, 1, 1, tzinfo=UTC)
UPDATE = os.environ.get("MONITOR_UPDATE_GOLDEN") == "1"

# Files that are not feeds at all and must raise ParseError. None: every broken file of the
# corpus (bad encodings, unclosed roots, undeclared namespaces, raw control characters) is
# still read by feedparser's loose parser, and an empty or truncated channel is a valid feed.
NOT_FEEDS: frozenset[str] = frozenset()

GOLDEN_FEEDS = (
    "bbc_world_2026_trimmed_houthi_missile.xml",  # at_medium/at_campaign removed, guid "#0" kept
    "bbc_world_2019_mojibake.xml",  # UTF-8 read right: "Guaidó"
    "google_alerts_atom_2019.xml",  # google.com/url redirects unwrapped; <b> in titles removed
    "google_news_fr_be_2020.xml",  # <source> RTBF; news.google.com token decoded; " - RTBF" off
    "broken_atom_no_namespace_relative_links.xml",  # root-relative links against the feed URL
    "atom_relative_uri_xml_base.xml",  # xhtml title with nested xml:base: text only
    "broken_rss_epoch_dc_date.xml",  # truncated XML, epoch dc:date
    "broken_rss_double_encoded_entities.xml",  # &acirc;&#128;&brvbar; -> "…"
    "uol_noticias_latin1_nodecl.xml",  # Latin-1 without declaration; Portuguese pubDate
    "ibash_windows1251.xml",  # windows-1251
    "cnn_world_edition_mock.xml",  # FeedBurner origLink instead of rss.cnn.com redirect
    "reuters_world_2018.xml",  # origLink, feedType/feedName removed from the url
    "heise_developer_atom.xml",  # wt_mc removed; +01:00 offsets to UTC
    "dw_english_rdf_2026_trimmed.xml",  # RSS 1.0, dc:date, maca removed
    "slashdot_rdf_iso8859.xml",  # ISO-8859-1 RDF, utm_* removed
    "nytimes_world_mock.xml",  # emc=rss&partner=rss removed
    "lemonde_une_fr.xml",  # xtor removed, +0100 offsets
    "cna_world_pool_2026_reserialized.xml",  # page chrome (Advertisement, share widgets) gone
    "japantimes_north_korea.xml",  # +0900 offsets
    "rotoauthority_atom_xhtml_content.xml",  # Atom xhtml content
    "suspilne_ukraine_odd_default_ns.xml",  # bogus default namespace, Cyrillic
)


def base_url(name: str) -> str:
    """The URL the pipeline would pass: where the feed was fetched from."""
    return f"https://feeds.example.org/{name}"


def parse(name: str) -> ParsedFeed:
    return parse_feed(
        (CORPUS / name).read_bytes(), feed_id=name, base_url=base_url(name), fetched_at=FETCHED_AT
    )


def raw_entries(name: str) -> list[Any]:
    body = io.BytesIO((CORPUS / name).read_bytes())
    return list(feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False).entries)


def snapshot_dates() -> dict[str, list[list[str | None]]]:
    """(guid, published_at) of every item of every feed: compared across process time zones."""
    out: dict[str, list[list[str | None]]] = {}
    for name in FEEDS:
        if name in NOT_FEEDS:
            continue
        out[name] = [
            [i.guid, i.published_at.isoformat() if i.published_at else None]
            for i in parse(name).items
        ]
    return out


def golden_of(name: str, result: ParsedFeed) -> dict[str, Any]:
    def item(i: Any) -> dict[str, Any]:
        return {
            "guid": i.guid,
            "url": i.url,
            "title": i.title,
            "summary_prefix": i.summary[:160],
            "content_prefix": i.content[:120],
            "author": i.author,
            "source": i.source,
            "language": i.language,
            "published_at": i.published_at.isoformat() if i.published_at else None,
            "categories": list(i.categories),
        }

    return {
        "feed": name,
        "title": result.title,
        "bozo": result.bozo.split(":", 1)[0] if result.bozo else None,
        "item_count": len(result.items),
        "items": [item(i) for i in result.items[:3]],
    }


def write_golden(name: str) -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    data = golden_of(name, parse(name))
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    (GOLDEN / name.replace(".xml", ".json")).write_text(text, encoding="utf-8")


# --- provenance ------------------------------------------------------------------------------


def test_every_corpus_feed_has_its_provenance() -> None:
    with (CORPUS / "SOURCES.tsv").open(encoding="utf-8") as f:
        sources = {row["filename"] for row in csv.DictReader(f, delimiter="\t")}
    with (CORPUS / "NOTES.tsv").open(encoding="utf-8") as f:
        notes = {row["filename"] for row in csv.DictReader(f, delimiter="\t")}
    assert len(FEEDS) >= 55
    assert set(FEEDS) <= sources
    assert set(FEEDS) <= notes


# --- every feed ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FEEDS)
def test_feed_parses_and_items_are_well_formed(name: str) -> None:
    if name in NOT_FEEDS:
        with pytest.raises(ParseError):
            parse(name)
        return
    result = parse(name)
    raw = raw_entries(name)
    items = result.items
    # Entries are only dropped when empty or listed twice, never silently in bulk.
    assert len(items) <= len(raw)
    assert len(raw) - len(items) <= max(1, len(raw) // 10)

    guids = [i.guid for i in items]
    assert len(set(guids)) == len(guids), "guids must be unique within a feed"
    for item in items:
        assert item.feed_id == name
        assert item.guid and item.guid == item.guid.strip()
        assert item.title or item.summary, item
        assert "<p>" not in item.summary and "<br" not in item.content
        assert "&amp;" not in item.title and "&#" not in item.summary
        assert re.fullmatch(r"[0-9a-f]{64}", item.content_hash)
        assert isinstance(item.categories, tuple)
        if item.published_at is not None:
            assert item.published_at.tzinfo is UTC
            assert dt.datetime(1990, 1, 1, tzinfo=UTC) <= item.published_at <= FETCHED_AT
        if item.url is not None:
            assert re.match(r"https?://[^/\s]+/", item.url), item.url
            parts = urlsplit(item.url)
            assert not parts.fragment
            assert not any(k.lower().startswith("utm_") for k, _ in parse_qsl(parts.query))

    # Where every entry gave a date (any of published/updated/created, even in a form
    # feedparser cannot read), every item has one; likewise for links.
    def gave(entry: Any, *keys: str) -> bool:
        return any(dict.get(entry, k) for k in keys)

    if raw and all(gave(e, "published", "updated", "created") for e in raw):
        assert all(i.published_at is not None for i in items)
    if raw and all(gave(e, "link", "links") for e in raw):
        assert all(i.url is not None for i in items)


def test_dates_are_the_same_in_any_process_time_zone() -> None:
    here = snapshot_dates()
    env = {**os.environ, "TZ": "Asia/Pyongyang", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "tests.test_corpus", "--snapshot-dates"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    there = json.loads(out.stdout)
    assert there.pop("__tz_offset__") != 0  # the child really ran in another zone
    assert there == json.loads(json.dumps(here))
    assert sum(1 for feed in here.values() for _, when in feed if when) > 500


# --- golden files ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOLDEN_FEEDS)
def test_golden(name: str) -> None:
    path = GOLDEN / name.replace(".xml", ".json")
    if UPDATE:
        write_golden(name)
    assert path.exists(), f"no golden file for {name}: run with MONITOR_UPDATE_GOLDEN=1"
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert golden_of(name, parse(name)) == expected


def test_golden_files_are_all_used() -> None:
    names = {p.name.replace(".json", ".xml") for p in GOLDEN.glob("*.json")}
    assert names == set(GOLDEN_FEEDS)


if __name__ == "__main__":
    if "--snapshot-dates" in sys.argv:
        import time

        data: dict[str, Any] = dict(snapshot_dates())
        data["__tz_offset__"] = time.timezone
        print(json.dumps(data))
    elif "--update-golden" in sys.argv:
        for feed in GOLDEN_FEEDS:
            write_golden(feed)
        print(f"wrote {len(GOLDEN_FEEDS)} golden files to {GOLDEN}")
    else:
        print(__doc__)
