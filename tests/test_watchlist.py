"""Loading watchlist files: the SPEC example, FILE:LINE:COL errors, ${VAR}s, versions, the demo."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.models import ItemData
from monitor.rules import Rule, Watchlist, load_watchlist

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests/data/watchlists/spec.yaml"
SEED = (ROOT / "seeds/seed-article.txt").read_text(encoding="utf-8")
SEED_TITLE = "China president's North Korea visit to send strong message to US"


def write(tmp_path: Path, text: str, name: str = "watchlist.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path | list[Path], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_watchlist(path, env=env if env is not None else {})
    return info.value.problems


def item(title: str = "", content: str = "", feed: str = "f", **kw: str) -> ItemData:
    return ItemData(feed_id=feed, guid="g", url=None, title=title, content=content, **kw)


# --- the SPEC's example ---------------------------------------------------------------------


def test_spec_example_loads() -> None:
    wl = load_watchlist(SPEC)
    assert isinstance(wl, Watchlist)
    assert [r.id for r in wl.rules] == ["dprk-missile", "xi-kim", "sanctions"]
    dprk, xi, sanctions = wl.rules
    assert isinstance(dprk, Rule)
    assert dprk.name == "North Korea missile activity"
    assert dprk.severity == "high"
    assert dprk.notify == ("ops", "analysts")
    assert dprk.feeds is None
    assert dprk.fields == ("title", "summary", "content")
    assert dprk.cooldown is None and dprk.backfill is None
    assert dprk.query_text == "@dprk + @missile"
    assert xi.name == "xi-kim" and xi.severity == "medium" and xi.notify is None
    assert xi.fields == ("title", "summary")
    assert xi.feeds == ("gs-wmd",)
    assert xi.cooldown == dt.timedelta(hours=6)
    assert sanctions.query_text == "(North Korea) + (sanctions) -(basketball)"
    assert len(wl.version) == 12
    assert wl.groups["dprk"] == ("North Korea", "DPRK", "Pyongyang", "Kim Jong-un")


def test_spec_example_matches_seed_article() -> None:
    wl = load_watchlist(SPEC)
    hits = wl.match(item(SEED_TITLE, SEED, feed="seed-demo"))
    assert [h.rule_id for h in hits] == ["dprk-missile", "sanctions"]
    assert hits[0].terms[:1] == ("north korea",)
    assert "missiles" in hits[0].terms
    assert "«" in hits[0].snippet
    assert hits[1].terms == ("north korea", "sanctions")


def test_feeds_scope_by_id_and_tag() -> None:
    wl = load_watchlist(SPEC)
    text = "Xi Jinping will meet Kim in Pyongyang"
    assert [h.rule_id for h in wl.match(item(text, feed="gs-wmd"))] == ["xi-kim"]
    assert wl.match(item(text, feed="other")) == []
    assert [h.rule_id for h in wl.match(item(text, feed="other"), ["gs-wmd"])] == ["xi-kim"]
    # fields: [title, summary] for xi-kim: content alone does not count
    assert wl.match(item("x", text, feed="gs-wmd")) == []


def test_structured_form_none_excludes() -> None:
    wl = load_watchlist(SPEC)
    hits = wl.match(item("North Korea basketball team faces sanctions"))
    assert [h.rule_id for h in hits] == []


def test_get_rule() -> None:
    wl = load_watchlist(SPEC)
    rule = wl.get("xi-kim")
    assert rule is not None and rule.id == "xi-kim"
    assert wl.get("nope") is None
    hit = rule.compiled.match(item("Xi Jinping and Kim"), rule_id=rule.id)
    assert hit is not None and hit.rule_id == "xi-kim"


# --- the demo watchlist -----------------------------------------------------------------------


def test_demo_watchlist_alerts_once_on_the_seed_article() -> None:
    wl = load_watchlist(ROOT / "config/watchlist.yaml")
    dprk = wl.get("dprk-missile")
    assert dprk is not None
    assert dprk.query_text == "@dprk + @missile"  # the mission's example, with its groups
    assert dprk.name == "North Korea missile activity" and dprk.severity == "high"
    assert len(wl.rules) >= 3
    # However the parser splits the page, only dprk-missile may match it.
    variants = [
        item(SEED_TITLE, SEED, feed="seed-demo", source="Iran Press TV"),
        item(SEED_TITLE, feed="seed-demo", summary=SEED),
        item("", SEED, feed="seed-demo"),
    ]
    for it in variants:
        hits = wl.match(it, ["demo", "wmd"])
        assert [h.rule_id for h in hits] == ["dprk-missile"]
        assert {"north korea", "missile", "missiles"} <= set(hits[0].terms)
        assert "«North Korea» fired a series of short-range «missiles»" in hits[0].snippet


def test_demo_watchlist_other_rules_do_match_their_topics() -> None:
    wl = load_watchlist(ROOT / "config/watchlist.yaml")
    cases = {
        "iran-nuclear": item("Iran expands uranium enrichment at Fordow"),
        "taiwan-pla": item("PLA launches drills around Taiwan"),
        "black-sea-shipping": item("Drone hits cargo ships in the Black Sea"),
    }
    for rule_id, it in cases.items():
        assert [h.rule_id for h in wl.match(it)] == [rule_id]


# --- errors, each with FILE:LINE:COL ------------------------------------------------------------


def test_duplicate_rule_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - id: a
            query: missile
          - id: a
            query: rocket
        """,
    )
    assert problems(path) == [f"{path}:4:9: duplicate rule id a (first defined at {path}:2)"]


def test_duplicate_rule_id_across_files(tmp_path: Path) -> None:
    one = write(tmp_path, "rules:\n  - {id: a, query: missile}\n", "one.yaml")
    two = write(tmp_path, "rules:\n  - {id: a, query: rocket}\n", "two.yaml")
    assert problems([one, two]) == [f"{two}:2:10: duplicate rule id a (first defined at {one}:2)"]


def test_unknown_group_column_inside_query(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        groups:
          dprk: [DPRK]
        rules:
          - id: r1
            query: "missile + @dprkk"
        """,
    )
    # the query starts at column 13 (after the quote), @dprkk is its 11th character
    assert problems(path) == [f"{path}:5:23: rule r1: unknown group @dprkk (groups: dprk)"]


def test_unparsable_query_column_plain_scalar(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - id: broken
            query: (Kim OR Moon
        """,
    )
    assert problems(path) == [f"{path}:3:12: rule broken: '(' is never closed"]


def test_unparsable_query_column_single_quoted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - id: broken
            query: 'Kim OR OR Moon'
        """,
    )
    assert problems(path) == [f"{path}:3:20: rule broken: OR needs a term before it"]


def test_empty_query(tmp_path: Path) -> None:
    path = write(tmp_path, 'rules:\n  - id: e\n    query: ""\n')
    assert problems(path) == [f"{path}:3:12: rule e: empty query"]


def test_all_negative_query(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: neg\n    query: -basketball\n")
    (p,) = problems(path)
    assert p.startswith(f"{path}:3:12: rule neg: the query only excludes")


def test_structured_only_none_is_all_negative(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: neg\n    none: [basketball]\n")
    (p,) = problems(path)
    assert p.startswith(f"{path}:3:11: rule neg: the query only excludes")


def test_structured_element_error_points_at_element(tmp_path: Path) -> None:
    path = write(tmp_path, 'rules:\n  - id: s\n    all: [Korea, "x AND"]\n')
    assert problems(path) == [f"{path}:3:21: rule s: AND needs a term after it"]


def test_rule_without_query(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: q\n    severity: high\n")
    (p,) = problems(path)
    assert p.startswith(f"{path}:2:5: rule q: no query")


def test_unknown_severity(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: s\n    query: x\n    severity: urgent\n")
    (p,) = problems(path)
    assert p.startswith(f"{path}:4:15: rules[0].severity: Input should be 'info'")


def test_unknown_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "rulez: []\nrules:\n  - id: s\n    query: x\n    sevrity: high\n")
    assert sorted(problems(path)) == sorted(
        [f"{path}:1:1: unknown key rulez", f"{path}:5:5: unknown key rules[0].sevrity"]
    )


def test_bad_field_and_duration(tmp_path: Path) -> None:
    path = write(
        tmp_path, "rules:\n  - id: s\n    query: x\n    fields: [body]\n    cooldown: soon\n"
    )
    got = problems(path)
    assert len(got) == 2
    assert got[0].startswith(f"{path}:4:14: rules[0].fields[0]: Input should be 'title'")
    assert got[1].startswith(f"{path}:5:15: rules[0].cooldown: 'soon' is not a duration")


def test_bad_group_member(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        groups:
          g: [ok, "bad OR"]
        rules:
          - id: r
            query: "@g"
        """,
    )
    # reported once, where the group is defined, not again at each use
    assert problems(path) == [f"{path}:2:16: group g: OR needs a term after it"]


def test_group_using_group(tmp_path: Path) -> None:
    path = write(tmp_path, "groups:\n  a: [x]\n  b: ['@a']\nrules: []\n")
    assert problems(path) == [f"{path}:3:8: group b: a group cannot use another group (@a in @b)"]


def test_unsafe_regex(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: re\n    query: '/(a+)+b/'\n")
    (p,) = problems(path)
    assert p.startswith(f"{path}:3:14: rule re: nested quantifiers")


def test_every_problem_is_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        rules:
          - id: a
            query: "Kim AND"
          - id: b
            query: "@nope"
            severity: urgent
          - id: a
            query: fine
        """,
    )
    got = problems(path)
    assert len(got) == 4, got
    assert any(":3:" in p and "rule a: AND needs" in p for p in got)
    assert any(":5:" in p and "unknown group @nope" in p for p in got)
    assert any(":6:" in p and "severity" in p for p in got)
    assert any(":7:" in p and "duplicate rule id a" in p for p in got)


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: a\n    query: [unclosed\n")
    (p,) = problems(path)
    assert p.startswith(f"{path}:") and "YAML syntax" in p


def test_missing_file(tmp_path: Path) -> None:
    [p] = problems(tmp_path / "nope.yaml")
    assert p.startswith(f"{tmp_path / 'nope.yaml'}:1:1: file not found (looked for ")


# --- ${VAR} expansion and versions --------------------------------------------------------------


def test_env_expansion(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: a\n    query: ${TOPIC} + ${EXTRA:-missile}\n")
    wl = load_watchlist(path, env={"TOPIC": "Iran"})
    assert wl.rules[0].query_text == "Iran + missile"
    assert [h.rule_id for h in wl.match(item("Iran missile"))] == ["a"]


def test_env_missing_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: a\n    query: ${TOPIC}\n")
    (p,) = problems(path, env={})
    assert p.startswith(f"{path}:3:12: environment variable TOPIC is not set")


def test_version_follows_content(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: a\n    query: missile\n")
    v1 = load_watchlist(path).version
    assert load_watchlist(path).version == v1
    path.write_text("rules:\n  - id: a\n    query: rocket\n", encoding="utf-8")
    v2 = load_watchlist(path).version
    assert v2 != v1
    path.write_text("rules:\n  - id: a\n    query: missile\n", encoding="utf-8")
    assert load_watchlist(path).version == v1


def test_version_follows_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "rules:\n  - id: a\n    query: ${TOPIC}\n")
    assert (
        load_watchlist(path, env={"TOPIC": "Iran"}).version
        != load_watchlist(path, env={"TOPIC": "Iraq"}).version
    )


def test_several_files_share_groups(tmp_path: Path) -> None:
    groups = write(tmp_path, "groups:\n  dprk: [DPRK, North Korea]\n", "groups.yaml")
    rules = write(tmp_path, "rules:\n  - {id: r, query: '@dprk + missile'}\n", "rules.yaml")
    wl = load_watchlist([groups, rules])
    assert [h.rule_id for h in wl.match(item("DPRK missile"))] == ["r"]


def test_empty_file_is_an_empty_watchlist(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing yet\n")
    wl = load_watchlist(path)
    assert wl.rules == ()
    assert wl.match(item("anything")) == []
