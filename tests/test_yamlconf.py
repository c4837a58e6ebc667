"""The YAML parse cache: the same data, the same FILE:LINE:COL messages, whether a file's
parse comes from the cache or from ruamel; anything JSON would not give back is not cached."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from monitor import yamlconf
from monitor.errors import ConfigError
from monitor.settings import load_settings
from tests.conftest import ROOT

CONFIG = """\
database: sqlite:///data/x.db
poll: {interval: 5m, max_bytes: 2MB}
server: {listen: 127.0.0.1:0}
feeds:
  - {id: a, url: 'https://example.org/a.xml', tags: [x, "y"]}
  - id: b
    url: ${FEED_B:-https://example.org/b.xml}
    interval: 90s
channels:
  ops: {type: webhook, url: "https://hooks.example.org/m", secret: "${HOOK_SECRET}"}
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(yamlconf.CACHE_ENV, str(folder))
    return folder


def no_parse(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every ruamel parse (a cache hit makes none until a position is asked for)."""
    parsed: list[Path] = []
    real = yamlconf._parse

    def spy(path: Path, text: str) -> object:
        parsed.append(path)
        return real(path, text)

    monkeypatch.setattr(yamlconf, "_parse", spy)
    return parsed


def uncached(path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> object:
    with monkeypatch.context() as m:
        m.setenv(yamlconf.CACHE_ENV, "")
        return yamlconf.load(path, env)[0]


@pytest.mark.parametrize(
    "path",
    [
        "config/monitor.yaml",
        "config/watchlist.yaml",
        "tests/data/rule_cases.yaml",
    ],
)
def test_a_cached_load_gives_what_the_parse_gives(
    path: str, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = ROOT / path
    env = {"HOOK_SECRET": "s"}
    want = uncached(file, env, monkeypatch)
    first = yamlconf.load(file, env)[0]  # parses and writes the cache
    assert list(cache.glob("*.json"))
    parsed = no_parse(monkeypatch)
    second = yamlconf.load(file, env)[0]
    assert parsed == []
    assert first == want == second
    assert json.dumps(second, sort_keys=True) == json.dumps(want, sort_keys=True)


def test_variables_are_expanded_after_the_cache_not_kept_in_it(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(CONFIG)
    one = load_settings(path, env={"HOOK_SECRET": "whsec_Zmlyc3Qtc2VjcmV0"})
    two = load_settings(path, env={"HOOK_SECRET": "whsec_b3RoZXI=", "FEED_B": "https://b.example/"})
    assert one.channels["ops"].secret == "whsec_Zmlyc3Qtc2VjcmV0"  # type: ignore[union-attr]
    assert two.channels["ops"].secret == "whsec_b3RoZXI="  # type: ignore[union-attr]
    assert str(two.feeds[1].url) == "https://b.example/"
    stored = "".join(p.read_text() for p in cache.glob("*.json"))
    assert "${HOOK_SECRET}" in stored and "Zmlyc3Qtc2VjcmV0" not in stored
    if os.name == "posix":
        assert cache.stat().st_mode & 0o077 == 0
        assert all(p.stat().st_mode & 0o077 == 0 for p in cache.glob("*.json"))


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        (CONFIG + "  mail: {type: email, to: [a@b.c], frm: x@y.z}\n", "11:36", "unknown key"),
        (CONFIG.replace("90s", "ninety"), "8:15", "feeds[1].interval"),
        (CONFIG.replace("${HOOK_SECRET}", "${NOT_SET}"), "10:68", "NOT_SET is not set"),
    ],
)
def test_errors_from_a_cached_parse_name_the_same_line_and_column(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, text: str, where: str, words: str
) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    messages = []
    for _ in range(2):  # the first parses (and caches), the second reads the cache
        with pytest.raises(ConfigError) as exc:
            load_settings(path, env={"HOOK_SECRET": "whsec_c2VjcmV0"})
        messages.append(exc.value.problems)
    assert list(cache.glob("*.json"))
    assert messages[0] == messages[1]
    assert any(m.startswith(f"{path}:{where}: ") and words in m for m in messages[0]), messages


@pytest.mark.parametrize(
    "text",
    [
        "1: one\n",  # a key JSON would give back as "1"
        "when: 2024-05-01\n",  # a timestamp
    ],
)
def test_what_json_would_not_give_back_is_not_cached(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(text)
    want = uncached(path, {}, monkeypatch)
    assert yamlconf.load(path, {})[0] == want
    assert not list(cache.glob("*.json"))


def test_a_tag_outside_the_core_schema_is_an_error_and_not_cached(
    tmp_path: Path, cache: Path
) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("a: ok\nb: !!python/name:os.system x\n")
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"f.yaml:2:4: b: the YAML tag !!python/name:os"):
            yamlconf.load(path, {})
    assert not list(cache.glob("*.json"))


def test_a_damaged_or_unwritable_cache_costs_only_the_parse(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(CONFIG)
    env = {"HOOK_SECRET": "s"}
    want = uncached(path, env, monkeypatch)
    yamlconf.load(path, env)
    (entry,) = cache.glob("*.json")
    for damage in ("{not json", '{"other": 1}', '["data"]', ""):
        entry.write_text(damage)
        assert yamlconf.load(path, env)[0] == want
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    monkeypatch.setenv(yamlconf.CACHE_ENV, str(blocked / "sub"))
    assert yamlconf.load(path, env)[0] == want


def test_the_cache_keeps_only_the_newest_files(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "f.yaml"
    for n in range(yamlconf._CACHE_KEEP + 5):
        path.write_text(f"n: {n}\n")
        yamlconf.load(path, {})
        os.utime(next(iter(sorted(cache.glob("*.json"), key=os.path.getmtime))), (n, n))
    assert len(list(cache.glob("*.json"))) == yamlconf._CACHE_KEEP


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("a: 1\n")
    key = yamlconf._cache_key(path.read_text())
    (cache / f"{key}.json").mkdir(parents=True)  # the rename onto it fails
    assert yamlconf.load(path, {})[0] == {"a": 1}
    assert [p.name for p in cache.iterdir()] == [f"{key}.json"]
