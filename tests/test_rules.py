"""The query language: cases in tests/data/rule_cases.yaml, plus the matcher's own behaviour."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from monitor.errors import QueryError
from monitor.models import ItemData
from monitor.rules import compile_query
from monitor.rules.matcher import ACScanner, Entry, Matcher
from monitor.rules.nodes import DEFAULT_FIELDS
from monitor.rules.regexsafe import RegexTerm
from monitor.rules.text import fold, token_spans, tokens
from tests.rules_oracle import DictScanner

ROOT = Path(__file__).resolve().parent.parent
CASES: list[dict[str, Any]] = YAML(typ="safe").load(
    (ROOT / "tests/data/rule_cases.yaml").read_text(encoding="utf-8")
)


def _item(case: dict[str, Any]) -> ItemData:
    f = dict(case.get("fields") or {})
    if "text" in case:
        f["content"] = case["text"]
    if "text_file" in case:
        f["content"] = (ROOT / case["text_file"]).read_text(encoding="utf-8")
    return ItemData(
        feed_id=f.get("feed", "test-feed"),
        guid="g",
        url=f.get("url"),
        title=f.get("title", ""),
        summary=f.get("summary", ""),
        content=f.get("content", ""),
        author=f.get("author"),
        categories=tuple(f.get("categories", ())),
        source=f.get("source"),
    )


def test_enough_cases() -> None:
    assert len(CASES) >= 150
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"


@pytest.mark.parametrize("scanner", [ACScanner, DictScanner], ids=["ac", "dict"])
@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_rule_case(case: dict[str, Any], scanner: type[ACScanner | DictScanner]) -> None:
    groups = case.get("groups") or {}
    fields = case.get("rule_fields") or DEFAULT_FIELDS
    if "error" in case:
        with pytest.raises(QueryError) as info:
            compile_query(case["query"], groups, fields=fields)
        assert case["error"] in str(info.value)
        assert info.value.column == case["column"], str(info.value)
        return
    compiled = compile_query(case["query"], groups, fields=fields)
    matcher = Matcher([Entry("r", compiled)], scanner=scanner)
    hits = matcher.match(_item(case))
    assert bool(hits) == case["match"], hits
    if hits:
        (hit,) = hits
        assert list(hit.terms) == case["terms"]
        if "snippet" in case:
            assert case["snippet"] in hit.snippet
        assert "«" in hit.snippet and "»" in hit.snippet


# --- text model -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "North Korea’s P'yŏngyang U.S.-led e.g. Zu\u0308rich Straße ﬁnance Æsop ＵＳ İstanbul",
        "朝鲜发射弹道导弹 북한이 ミサイル ＡＢＣ \ue000 x\u0301 \u0301 𝐚𝐛 ʰ",
        "U.S.-led talks, and 北京 U.S. Ａ.Ｂ.",
        "plain ascii, with 'quotes' and it's",
    ],
)
def test_fold_keeps_length_and_spans_match_tokens(text: str) -> None:
    folded = fold(text)
    assert len(folded) == len(text)
    assert len(token_spans(folded)) == len(tokens(text))


def test_input_cannot_forge_a_placeholder() -> None:
    tokens("Straße")  # registers a placeholder for ß
    assert tokens("𝐚 ʰ") == ["a", "h"]  # what the placeholders look like, folded as themselves


def test_cjk_and_plain_patterns_agree_without_cjk() -> None:
    from monitor.rules import text as t

    sample = fold("U.S.-led, e.g. Kim's P'yŏngyang ÆSOP rock'n'roll 10:30 a.b")
    assert t._TOKEN_PLAIN.findall(sample) == t._token_cjk().findall(sample)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ09_.'- \x01\t\nU.S.x'y")), max_size=30))
def test_the_ascii_pattern_agrees_with_the_plain_one_on_ascii(text: str) -> None:
    from monitor.rules import text as t

    for pattern in (t._TOKEN_ASCII, t._GROUPED[t._TOKEN_ASCII]):
        plain = t._TOKEN_PLAIN if pattern is t._TOKEN_ASCII else t._GROUPED[t._TOKEN_PLAIN]
        assert pattern.findall(text) == plain.findall(text)
        assert pattern.split(text) == plain.split(text)


def _backtracking(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """The same pattern with its possessive repeats made plain greedy ones."""
    return re.compile(pattern.pattern.replace("++", "+").replace("*+", "*"))


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZé09_.'’- \x01\t\nU.S.x'y北ʰ\u0301")), max_size=40))
def test_the_possessive_token_patterns_find_what_backtracking_ones_do(text: str) -> None:
    """The word's repeats are possessive for speed: nothing follows them, so they match the
    same tokens (findall) and the same gaps (split, the grouped forms) as plain ones."""
    from monitor.rules import text as t

    folded = fold(text)
    for pattern in (t._TOKEN_ASCII, t._TOKEN_PLAIN, t._token_cjk(), *t._GROUPED.values()):
        assert "++" in pattern.pattern
        plain = _backtracking(pattern)
        assert pattern.findall(folded) == plain.findall(folded)
        assert pattern.split(folded) == plain.split(folded)


def test_the_ascii_pattern_agrees_on_the_corpus_text() -> None:
    from monitor.rules import text as t

    paths = sorted((ROOT / "tests" / "data" / "corpus").glob("*.xml"))
    assert paths
    for path in paths:
        folded = fold(path.read_text(encoding="utf-8", errors="replace"))
        ascii_text = folded.encode("ascii", "ignore").decode()
        assert t._TOKEN_ASCII.findall(ascii_text) == t._TOKEN_PLAIN.findall(ascii_text), path


# --- matcher behaviour ------------------------------------------------------------------------


def test_snippet_is_short_and_marked() -> None:
    text = (ROOT / "seeds/seed-article.txt").read_text(encoding="utf-8")
    hit = compile_query("North Korea + missile").match_text(text)
    assert hit is not None
    assert hit.terms == ("north korea", "missile")
    assert 100 <= len(hit.snippet) <= 260
    assert hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert "«North Korea's» «missile»" in hit.snippet
    assert "\n" not in hit.snippet


def test_snippet_whole_short_text_has_no_ellipsis() -> None:
    hit = compile_query("missile").match_text("A missile.")
    assert hit is not None and hit.snippet == "A «missile»."


def test_compiled_query_without_match_returns_none() -> None:
    assert compile_query("missile").match_text("nothing here") is None


def test_feed_filter_ids_and_tags() -> None:
    cq = compile_query("missile")
    m = Matcher([Entry("r", cq, frozenset({"gs-wmd", "wmd"}))])
    item = ItemData(feed_id="other", guid="g", url=None, title="missile")
    assert m.match(item) == []
    assert [h.rule_id for h in m.match(item, feed_tags=["wmd"])] == ["r"]
    item2 = ItemData(feed_id="gs-wmd", guid="g", url=None, title="missile")
    assert [h.rule_id for h in m.match(item2)] == ["r"]


def test_many_rules_results_in_rule_order_and_only_candidates_evaluated() -> None:
    queries = [f"term{i} + missile" for i in range(500)] + ["missile -term3"]
    entries = [Entry(f"r{i}", compile_query(q)) for i, q in enumerate(queries)]
    m = Matcher(entries)
    item = ItemData(feed_id="f", guid="g", url=None, title="term7 missile term3 term42")
    ctx = m.context(item)
    cands = m.candidates(ctx)
    assert cands == [3, 7, 42, 500]  # not all 501: the index keeps the rest out
    assert [h.rule_id for h in m.match(item)] == ["r3", "r7", "r42"]


def test_regex_only_rule_is_always_a_candidate() -> None:
    m = Matcher([Entry("r", compile_query("/KN-\\d+/"))])
    item = ItemData(feed_id="f", guid="g", url=None, title="KN-23 test")
    assert m.candidates(m.context(item)) == [0]
    assert m.match(item)[0].terms == ("kn-23",)


def test_regex_timeout_counts_as_no_match(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import monitor.rules.regexsafe as rs

    monkeypatch.setattr(rs, "TIMEOUT_S", 0.01)
    # Overlapping alternatives under a star: passes the static check, exponential on x{n}.
    term = RegexTerm("(?:x|xx)*(?:y|z)", False)
    before = rs.timeouts()
    started = time.monotonic()
    assert term.search("x" * 40 + " ") is False
    assert time.monotonic() - started < 1.0
    assert rs.timeouts() == before + 1
    assert term.finditer("x" * 40 + " ") == []
    assert rs.timeouts() == before + 2


def test_query_error_carries_query_and_column() -> None:
    with pytest.raises(QueryError) as info:
        compile_query("Kim AND")
    assert info.value.query == "Kim AND"
    assert info.value.column == 5
    assert str(info.value).startswith("column 5: ")


def test_match_ignores_fields_no_rule_reads() -> None:
    m = Matcher([Entry("r", compile_query("Reuters"))])
    item = ItemData(feed_id="f", guid="g", url=None, title="x", source="Reuters")
    assert m.fields == [0, 1, 2]
    assert m.match(item) == []


@settings(max_examples=5000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("az09_.'- \x01\t\n,;U.S.x'ys''é")), max_size=40))
def test_ascii_tokens_by_split_are_the_patterns_tokens(text: str) -> None:
    """joined_tokens' split of ASCII text gives what the token pattern finds, cleaned."""
    from monitor.rules import text as t

    folded = fold(text)
    expected = t._cleanup(t.SEP.join(t._pattern(folded).findall(folded)))
    assert t.joined_tokens(folded) == expected
