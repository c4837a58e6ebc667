"""`monitor opml import` / `export` on real files (tests/data/opml): folders become tags, ids
are unique, skipped outlines are reported with their position, `--write` appends without
touching anything else, hostile XML is refused, and export -> import gives the same feeds."""

from __future__ import annotations

import difflib
import re
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest
from defusedxml import ElementTree as SafeET

from monitor import opml
from monitor.cli import run_cli
from monitor.errors import ConfigError
from monitor.settings import load_settings
from tests.conftest import DATA, ROOT

OPML = DATA / "opml"
SUBSCRIPTIONS = OPML / "subscriptions.opml"
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")

# A configuration as an analyst keeps it: comments everywhere, feeds in the middle, a section
# comment right after the list. gs-wmd's URL is also in the OPML file; `reuters` takes the id
# the first Reuters outline would get.
CONFIG = """\
# Desk configuration. Edited by hand; keep the comments.
database: sqlite:///data/monitor.db   # local file

poll:
  interval: 10m          # default per feed

feeds:
  - id: gs-wmd
    url: https://www.globalsecurity.org/wmd/library/news/rss.xml
    tags: [wmd]          # the aggregator
  - id: reuters
    url: https://www.reutersagency.com/feed/
    interval: 5m

# Channels: the ops webhook comes later.
channels:
  console: {type: log}   # alerts as log lines
"""

EXPECTED = {  # id -> (url, tags) of what subscriptions.opml adds to CONFIG
    "us-department-of-defense": (
        "https://www.defense.gov/DesktopModules/ArticleCS/RSS.ashx?ContentType=1&Site=945&max=10",
        ("defence",),
    ),
    "nato-news": (
        "https://www.nato.int/cps/rss/en/natohq/rssFeed.xsl/rssFeed.xml",
        ("defence",),
    ),
    "ministry-of-defence": (
        "https://www.gov.uk/government/organisations/ministry-of-defence.atom",
        ("defence", "ministries"),
    ),
    "ministere-des-armees": ("https://www.defense.gouv.fr/rss.xml", ("defence", "ministries")),
    # two outlines with the text "Reuters", and `reuters` already configured: their titles
    "reuters-world": (
        "https://feeds.reuters.com/Reuters/worldNews",
        ("wire-services", "think-tanks"),  # also under Think tanks (as http://): merged
    ),
    "reuters-politics": ("https://feeds.reuters.com/Reuters/PoliticsNews", ("wire-services",)),
    "ap-top-news": ("https://apnews.com/hub/ap-top-news.rss", ("wire-services",)),
    "yonhap": ("https://en.yna.co.kr/RSS/nk.xml", ("wire-services", "korea", "asia", "east")),
    "38-north": ("https://www.38north.org/feed/", ("think-tanks",)),
    "csis-analysis": ("https://www.csis.org/analysis/feed", ("think-tanks",)),
    "rand": ("https://www.rand.org/pubs.xml", ("think-tanks",)),
    "kcnawatch.org": ("https://kcnawatch.org/feed/", ()),  # a Korean name: id from the host
    "1945": ("https://history.example.org/1945.rss", ()),  # must stay a string in YAML
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(CONFIG)
    return path


def feeds_of(path: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {f.id: (f.url, f.tags) for f in load_settings(path).feeds}


def only_insertions(old: str, new: str) -> bool:
    ops = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines()).get_opcodes()
    return all(op in ("equal", "insert") for op, *_ in ops)


def test_import_prints_entries_that_load_settings_accepts(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["--config", str(config), "opml", "import", str(SUBSCRIPTIONS)]) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert config.read_text() == CONFIG  # printing never touches the file
    assert printed.startswith("feeds:\n  - id: ")

    # On its own it is a configuration ...
    alone = tmp_path / "alone.yaml"
    alone.write_text(printed)
    assert feeds_of(alone) == EXPECTED
    assert all(ID.match(fid) for fid in EXPECTED)

    # ... and its entries pasted under the existing `feeds:` give a valid one: no id twice.
    entries = printed.removeprefix("feeds:\n")
    pasted = tmp_path / "pasted.yaml"
    pasted.write_text(CONFIG.replace("    interval: 5m\n", "    interval: 5m\n" + entries))
    assert set(feeds_of(pasted)) == {"gs-wmd", "reuters", *EXPECTED}

    # What was left out, each with its place in the file, on stderr (stdout stays YAML).
    err = captured.err
    for line, col, why in [
        (14, 7, "'GlobalSecurity.org WMD news' skipped: already configured as feed gs-wmd"),
        (20, 7, "'Defence newsletter (email only)' skipped: no xmlUrl"),
        (27, 7, "'Wire archive (gopher)' skipped: not an http(s) URL (gopher://"),
        (33, 7, "'Reuters World' same URL as"),
        (37, 5, "'Local notes' skipped: not an http(s) URL (file:///"),
    ]:
        assert f"{SUBSCRIPTIONS}:{line}:{col}: {why}" in err
    assert f"13 new feeds from {SUBSCRIPTIONS}, 4 skipped" in err


def test_import_adds_tags_and_works_without_a_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere.yaml"
    argv = ["--config", str(missing), "opml", "import", str(SUBSCRIPTIONS), "--tag", "osint"]
    assert run_cli([*argv, "--tag", "Desk A"]) == 0
    captured = capsys.readouterr()
    assert f"no {missing}" in captured.err
    printed = tmp_path / "printed.yaml"
    printed.write_text(captured.out)
    feeds = feeds_of(printed)
    assert feeds["globalsecurity.org-wmd-news"][1] == ("defence", "osint", "Desk A")
    assert feeds["reuters"][1] == ("wire-services", "think-tanks", "osint", "Desk A")
    assert not missing.exists()


def test_write_appends_keeps_comments_and_is_idempotent(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--config", str(config), "opml", "import", str(SUBSCRIPTIONS), "--write"]
    assert run_cli(argv) == 0
    assert "13 added" in capsys.readouterr().out
    text = config.read_text()
    assert only_insertions(CONFIG, text), text
    # The new entries are in the list, and the section comment still heads `channels:`.
    assert "    interval: 5m\n  - id: us-department-of-defense\n" in text
    assert "\n\n# Channels: the ops webhook comes later.\nchannels:\n" in text
    assert "  - id: reuters-politics  # Reuters\n" in text  # the OPML name, kept as a comment
    feeds = feeds_of(config)
    assert list(feeds) == ["gs-wmd", "reuters", *EXPECTED]
    assert {k: v for k, v in feeds.items() if k in EXPECTED} == EXPECTED
    assert [p.name for p in config.parent.iterdir()] == [config.name]  # no temporary left

    assert run_cli(argv) == 0  # the second import adds nothing and leaves the file alone
    captured = capsys.readouterr()
    assert "0 new feeds" in captured.out and "0 added" in captured.out
    assert "already configured as feed reuters-world" in captured.err
    assert config.read_text() == text


def test_write_into_the_demo_config(tmp_path: Path) -> None:
    config = tmp_path / "monitor.yaml"
    shutil.copy(ROOT / "config" / "monitor.yaml", config)
    before = config.read_text()
    argv = ["--config", str(config), "opml", "import", str(SUBSCRIPTIONS), "--write"]
    assert run_cli(argv) == 0
    after = config.read_text()
    assert only_insertions(before, after)
    # The comment block between the feeds and `server:` stays with `server:`.
    assert "    url: https://history.example.org/1945.rss\n\n# /healthz" in after
    assert len(load_settings(config).feeds) == 2 + 14  # the demo's seed-demo and gs-teaser


@pytest.mark.parametrize(
    "text",
    [
        "database: sqlite:///x.db\nfeeds: []   # none yet\n",
        "database: sqlite:///x.db\n",
        "",
    ],
    ids=["empty list", "no feeds key", "empty file"],
)
def test_write_into_a_config_without_feeds(tmp_path: Path, text: str) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(text)
    assert run_cli(["--config", str(config), "opml", "import", str(SUBSCRIPTIONS), "--write"]) == 0
    feeds = feeds_of(config)
    assert len(feeds) == 14 and feeds["reuters"][0] == EXPECTED["reuters-world"][0]
    if "# none yet" in text:
        assert "# none yet" in config.read_text()


def test_write_keeps_windows_line_ends(config: Path) -> None:
    config.write_bytes(CONFIG.replace("\n", "\r\n").encode())
    assert run_cli(["--config", str(config), "opml", "import", str(SUBSCRIPTIONS), "--write"]) == 0
    data = config.read_bytes()
    assert data.count(b"\n") == data.count(b"\r\n") > CONFIG.count("\n")


def test_write_through_a_symlink_keeps_the_link_and_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "real" / "monitor.yaml"
    target.parent.mkdir()
    target.write_text(CONFIG)
    target.chmod(0o640)
    link = tmp_path / "monitor.yaml"
    link.symlink_to(target)
    assert run_cli(["--config", str(link), "opml", "import", str(SUBSCRIPTIONS), "--write"]) == 0
    assert link.is_symlink()
    assert len(load_settings(target).feeds) == 2 + 13
    assert target.stat().st_mode & 0o777 == 0o640


def test_write_never_leaves_a_broken_config(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A tag that monitor.yaml would expand from the environment, where it is not set: the
    # candidate file fails validation, so the real one is not replaced.
    argv = ["--config", str(config), "opml", "import", str(SUBSCRIPTIONS), "--write"]
    assert run_cli([*argv, "--tag", "${MONITOR_TEST_UNSET_VAR}"]) == 2
    err = capsys.readouterr().err
    assert f"{config}:" in err and "MONITOR_TEST_UNSET_VAR is not set" in err
    assert ".tmp" not in err  # the message names the file the user knows
    assert config.read_text() == CONFIG
    assert [p.name for p in config.parent.iterdir()] == [config.name]


def test_write_refuses_a_layout_it_cannot_keep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two lists indented differently: ruamel.yaml has one indentation for the whole file.
    text = (
        "watchlist:\n- config/a.yaml\n- config/b.yaml\n"
        "feeds:\n    - id: one\n      url: https://one.example/rss\n"
    )
    config = tmp_path / "monitor.yaml"
    config.write_text(text)
    assert run_cli(["--config", str(config), "opml", "import", str(SUBSCRIPTIONS), "--write"]) == 2
    assert "appending would rewrite this line" in capsys.readouterr().err
    assert config.read_text() == text


def test_an_invalid_config_stops_import_and_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text("feeds:\n  - id: x\n    url: https://x.example/\n    intervall: 5m\n")
    for command in (["import", str(SUBSCRIPTIONS)], ["import", "--write", str(SUBSCRIPTIONS)]):
        assert run_cli(["--config", str(config), "opml", *command]) == 2
    assert run_cli(["--config", str(config), "opml", "export"]) == 2
    assert capsys.readouterr().err.count(f"{config}:4:5: unknown key feeds[0].intervall") == 3


@pytest.mark.parametrize("name", ["billion_laughs.opml", "external_entity.opml"])
def test_hostile_xml_is_refused_quickly_and_small(
    name: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = OPML / name
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as caught:
            opml.read_opml(path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 1.0
    assert peak < 1_000_000  # about 16 kB; 10^9 "lol"s would be 3 GB
    assert str(caught.value).startswith(f"{path}:3:")
    assert "entity declaration refused" in str(caught.value)

    assert run_cli(["--config", str(config), "opml", "import", str(path)]) == 2
    captured = capsys.readouterr()
    assert "root:" not in captured.out + captured.err  # /etc/passwd was never read
    assert captured.out == ""


@pytest.mark.parametrize(
    ("name", "where", "message"),
    [
        ("broken.opml", "6:5", "not well-formed XML: mismatched tag"),
        ("not_opml.xml", "2:1", "not an OPML file: the root element is <rss>"),
    ],
)
def test_bad_opml_is_a_config_error_with_its_position(
    name: str, where: str, message: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["--config", str(config), "opml", "import", str(OPML / name)]) == 2
    assert f"{OPML / name}:{where}: {message}" in capsys.readouterr().err


def test_empty_and_bodyless_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.opml"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match=r"empty.opml:1:1: not well-formed XML"):
        opml.read_opml(empty)
    headless = tmp_path / "nobody.opml"
    headless.write_text('<opml version="2.0"><head><title>x</title></head></opml>')
    with pytest.raises(ConfigError, match=r"nobody.opml:1:1: not an OPML file: no <body>"):
        opml.read_opml(headless)


EXPORT_CONFIG = """\
database: sqlite:///data/monitor.db
feeds:
  - id: gs-wmd
    url: https://www.globalsecurity.org/wmd/library/news/rss.xml
    tags: [wmd, aggregators]
  - id: yonhap-nk
    url: https://en.yna.co.kr/RSS/nk.xml
    tags: [korea]
  - id: dod
    url: https://www.defense.gov/DesktopModules/ArticleCS/RSS.ashx?ContentType=1&Site=945
    tags: [wmd]
  - id: kcna
    url: http://kcnawatch.org/feed/
  - id: seed-demo
    url: seeds/feeds/seed.xml
    tags: [demo]
"""


def test_export_then_import_gives_the_same_feeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "monitor.yaml"
    config.write_text(EXPORT_CONFIG)
    exported = tmp_path / "feeds.opml"
    assert run_cli(["--config", str(config), "opml", "export", "--output", str(exported)]) == 0
    assert "seed-demo: left out: a local file" in capsys.readouterr().err

    # OPML 2.0 that a safe XML parser reads: a folder per first tag, untagged feeds at the top.
    root = SafeET.parse(exported).getroot()
    assert root.tag == "opml" and root.get("version") == "2.0"
    body = root.find("body")
    assert body is not None
    folders = {o.get("text"): o for o in body.findall("outline") if o.get("xmlUrl") is None}
    assert list(folders) == ["wmd", "korea"]
    assert [o.get("title") for o in folders["wmd"]] == ["gs-wmd", "dod"]
    assert folders["wmd"][0].get("category") == "wmd,aggregators"
    urls = [o.get("xmlUrl") for o in body.iter("outline") if o.get("xmlUrl")]
    configured = {f.url for f in load_settings(config).feeds if f.id != "seed-demo"}
    assert sorted(urls) == sorted(configured)

    # Into an empty configuration: the same ids, URLs and tags.
    empty = tmp_path / "empty.yaml"
    empty.write_text("database: sqlite:///data/monitor.db\nfeeds: []\n")
    assert run_cli(["--config", str(empty), "opml", "import", str(exported), "--write"]) == 0
    before = {k: v for k, v in feeds_of(config).items() if k != "seed-demo"}
    assert feeds_of(empty) == before

    # Into the configuration it came from: nothing new.
    capsys.readouterr()
    assert run_cli(["--config", str(config), "opml", "import", str(exported)]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "0 new feeds" in captured.err


def test_export_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    config = ROOT / "config" / "monitor.yaml"  # the demo: one local feed, left out
    assert run_cli(["--config", str(config), "opml", "export"]) == 0
    out = capsysbinary.readouterr().out
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    root = SafeET.fromstring(out)
    assert root.find("body") is not None and list(root.iter("outline")) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Reuters: World News", "reuters-world-news"),
        ("U.S. Department of Defense", "us-department-of-defense"),
        ("GlobalSecurity.org", "globalsecurity.org"),
        ("Ministère des Armées", "ministere-des-armees"),
        ("  --Korea Herald__ ", "korea-herald"),
        ("조선중앙통신", ""),
        ("x" * 100, "x" * 64),
    ],
)
def test_slug_id(name: str, expected: str) -> None:
    assert opml.slug_id(name) == expected
    assert expected == "" or ID.match(expected)


def test_slug_tag_keeps_other_scripts() -> None:
    assert opml.slug_tag("Wire services") == "wire-services"
    assert opml.slug_tag("Think tanks / Asia") == "think-tanks-asia"
    assert opml.slug_tag("Новости") == "новости"


def test_urls_that_monitor_yaml_would_expand_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "x.opml"
    path.write_text(
        '<opml version="1.0"><body>'
        '<outline text="a" xmlUrl="https://a.example/rss?k=${SMTP_PASSWORD}"/>'
        '<outline text="b" xmlUrl="HTTPS://B.example:443/rss"/>'
        '<outline text="c" xmlUrl="https://b.example/rss"/>'
        "</body></opml>"
    )
    plan = opml.plan_import(opml.read_opml(path), [])
    assert [f.id for f in plan.feeds] == ["b"]
    assert "would expand from the environment" in str(plan.notes[0])
    assert "same URL as" in str(plan.notes[1])
