"""yamlfast (libyaml) reads what ruamel's round trip reads, or declines: never other data."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from monitor import yamlconf, yamlfast
from monitor.errors import ConfigError
from tests.conftest import ROOT
from tests.test_yamlconf import no_parse

DECLINED = "declined"


def round_trip(text: str) -> Any:
    """What yamlconf's round trip makes of the text, as its cache gives it back; or why not."""
    located = yamlconf.Located(Path("t.yaml"), text=text)
    reader = yamlconf._Reader(located, {}, None)
    try:
        raw = reader.raw(located.tree, ())
    except ConfigError:
        return "error"
    if not reader.cacheable or reader.problems:
        return "not plain"
    return json.loads(json.dumps(raw))


def fast(text: str) -> Any:
    ok, data = yamlfast.read(text)
    return data if ok else DECLINED


def same_or_declined(text: str) -> bool:
    got = fast(text)
    if got == DECLINED:
        return True
    want = round_trip(text)
    assert not isinstance(want, str) or want not in ("error", "not plain"), (text, want, got)
    # json.dumps: NaN equals NaN, and key order counts
    assert json.dumps(got) == json.dumps(want), text
    return False


REPO_YAML = subprocess.run(
    ["git", "ls-files", "*.yaml", "*.yml"], cwd=ROOT, capture_output=True, text=True, check=True
).stdout.split()


@pytest.mark.parametrize("path", REPO_YAML)
def test_every_yaml_file_of_the_repository_reads_the_same(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    declined = same_or_declined(text)
    # the files a person writes are plain YAML: the fast reading must take them
    if path.startswith("config/"):
        assert not declined


def test_a_config_of_2000_feeds_is_read_fast_and_the_same() -> None:
    head = [
        "database: sqlite:///data/x.db",
        'poll:\n  interval: 1h\n  jitter: 0s\n  concurrency: 50\n  user_agent: "ua"',
        "server: {listen: 127.0.0.1:0}",
        "channels:\n  console: {type: log}",
        "feeds:",
    ]
    feeds = [
        f"  - {{id: f{n}, url: 'http://127.0.0.1:8080/{n}.xml', backfill: true}}"
        for n in range(2000)
    ]
    assert not same_or_declined("\n".join(head + feeds) + "\n")


EDGE_CASES = [
    "",
    "# only a comment\n",
    "a:\nb: ''\nc: ~\nd: null\ne: Null\n",
    "a: true\nb: True\nc: yes\nd: on\ne: off\nf: n\n",  # YAML 1.2: yes/on/off/n are strings
    "a: 017\nb: 0o17\nc: 0x1F\nd: 1_000\ne: +12\nf: -3\ng: 0b101\n",
    "a: 1.5\nb: .5\nc: 1e3\nd: .inf\ne: -.Inf\nf: .nan\ng: NaN\nh: 1.\n",
    "a: 1:30\nb: 12:30:00\nc: 1h\nd: 0.5s\ne: 127.0.0.1:0\n",  # 1.1 sexagesimals: strings
    "a: 2024-01-01\n",  # a date: not JSON's
    "a: 2024-01-01T10:00:00Z\n",
    "server: {listen: 127.0.0.1:0}\n",
    "a: !!str 1\n",
    "a: !!int '3'\n",
    "a: !custom x\n",
    "a: !!python/name:os.system x\n",
    "a: &x [1, 2]\nb: *x\n",
    "a: &x {b: 1}\nc: *x\n",
    "<<: {a: 1}\nb: 2\n",
    "a: {<<: {b: 1}}\n",
    "'<<': 1\n",
    "=: 1\n",
    "a: 1\na: 2\n",
    "1: a\n",
    "true: a\n",
    "null: a\n",
    "? [a]\n: 1\n",
    "%YAML 1.1\n---\na: yes\n",
    "%YAML 1.2\n---\na: yes\n",
    "a: b\n---\nc: d\n",
    "\ufeffa: 1\n",
    "a: x\u2028y\n",
    "a: x\x85y\n",
    'a: "\\/ \\t \\x41 \\u00e9 \\N \\_ \\L \\P"\n',
    "a: 'it''s'\n",
    "a: |\n  one\n    two\n\n  three\n",
    "a: >\n  one\n  two\n\n  three\n    more\n  four\n",
    "a: |-\n  x\n",
    "a: >+\n  x\n\n",
    "a: plain\n  continued\n\n  after a blank\n",
    "a: [1, 'b', {c: d}, [e]]\n",
    "a: {b: [1, 2], c: {d: e}}\n",
    "- a\n- - b\n  - c\n- {d: e}\n",
    "a: b # comment\nc: 'd # not a comment'\n",
    "a: ${VAR:-default}\nb: '${X}'\n",
    "a:\t1\n",
    "a: 1\n\tb: 2\n",
    "a: [1, 2\n",
    "a: 'unterminated\n",
    "a: -\n",
    "- -\n",
    'a: "\\x00"\n',
    "a: 9999999999999999999999\n",
    "a: 1e400\n",
    "key with spaces: value\n'quoted key': 2\n\"dq key\": 3\n",
    "a: é\nb: 日本\nc: 'ß'\n",
]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases_read_the_same_or_are_declined(text: str) -> None:
    same_or_declined(text)


def test_what_the_fast_reading_declines() -> None:
    for text in (
        "a: 2024-01-01\n",
        "a: !!str 1\n",
        "a: &x [1, *x]\n",
        "<<: {a: 1}\n",
        "a: 1\na: 2\n",
        "1: a\n",
        "%YAML 1.1\n---\na: yes\n",
        "a: x\u2028y\n",
        "a: [1, 2\n",
    ):
        assert fast(text) == DECLINED, text


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(alphabet=st.sampled_from(list("ab1 _-.:#'\"&*!%@`|>{}[],?~\t\\é日\x85")), max_size=8),
    st.sampled_from(["yes", "no", "on", "~", "null", "0x1F", "1_0", "1:30", ".inf", "2024-01-01"]),
)
_docs = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(alphabet="abc<=1 :", min_size=0, max_size=4), children, max_size=4),
    ),
    max_leaves=12,
)


def _dump(data: Any, flow: bool) -> str:
    yaml = YAML(typ="rt")
    yaml.default_flow_style = flow
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


@settings(
    max_examples=int(os.environ.get("YAMLFAST_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    _docs,
    st.booleans(),
    st.lists(
        st.tuples(st.integers(0, 200), st.sampled_from(list(" -:'\"#&*!\n\t[]{}|>"))), max_size=3
    ),
)
def test_generated_documents_read_the_same_or_are_declined(
    data: Any, flow: bool, edits: list[tuple[int, str]]
) -> None:
    text = _dump(data, flow)
    for at, ch in edits:  # and damaged, to reach what a dump never writes
        text = text[:at] + ch + text[at:]
    same_or_declined(text)


def test_a_plain_file_loads_without_the_round_trip_and_errors_still_say_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(yamlconf.CACHE_ENV, "")  # every load a cache miss
    parsed = no_parse(monkeypatch)
    good = tmp_path / "good.yaml"
    good.write_text("a: 1\nb: [x, 'y']\n")
    assert yamlconf.load(good, {})[0] == {"a": 1, "b": ["x", "y"]}
    assert parsed == []
    dated = tmp_path / "dated.yaml"
    dated.write_text("a: 2024-01-01\n")  # declined: the round trip reads it
    assert yamlconf.load(dated, {})[0] == {"a": dt.date(2024, 1, 1)}
    assert parsed == [dated]
    unset = tmp_path / "unset.yaml"
    unset.write_text("a: 1\nb: ${NOT_SET_ANYWHERE}\n")
    with pytest.raises(ConfigError, match=r"unset.yaml:2:4: environment variable NOT_SET"):
        yamlconf.load(unset, {})
