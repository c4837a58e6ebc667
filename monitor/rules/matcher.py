"""The compiled matcher: many queries against one item, and why each matched.

Per item (the hot path), in order:

1. Each field any rule reads is folded and tokenized once (text.py: a translate and a findall,
   both in C) into its joined form; the fields are concatenated into one string.
2. One Aho-Corasick pass (pyahocorasick, in C) over that string finds every occurrence of every
   search key of every rule at once: words, prefixes and whole phrases. Keys are shared between
   rules, so 10,000 rules that mention "missile" add one key. Each occurrence becomes
   (field, token index) in `ItemContext.hits`.
3. Candidate rules: every key found marks the anchor clauses it belongs to (compiler.py); a
   rule is evaluated only when all its clauses are marked (rules whose query has no anchor, i.e.
   only /regex/ terms, are always evaluated). Python work so far is proportional to the number
   of key occurrences, not to the number of rules.
4. Each candidate's node tree is tested against the hit table; NEAR and phrases-with-wildcards
   look at token positions only there.
5. For a match, the nodes explain themselves: the matched terms (normalized, in query order)
   and a snippet of about 200 characters of the original text around the densest cluster of
   hits, with each hit wrapped in « ». Token spans are computed only now, for the fields that
   have evidence.

Without pyahocorasick a pure-Python scanner (dict lookups per token) gives the same hit table,
more slowly.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from monitor.models import Hit, ItemData
from monitor.rules import query as q
from monitor.rules.compiler import (
    DEFAULT_FIELDS,
    FIELDS,
    Clause,
    Evidence,
    GroupTable,
    Leaf,
    Node,
    Regex,
    compile_tree,
    field_mask,
    parse_groups,
    walk,
)
from monitor.rules.text import SEP, fold, joined_tokens, label, token_spans

try:
    import ahocorasick as _ahocorasick
except ImportError:  # pragma: no cover - the fallback is tested by forcing it
    _ahocorasick = None

SNIPPET_WIDTH: Final = 200
_FIELD_SEP: Final = "\x02"


def _field_text(item: ItemData, index: int) -> str:
    name = FIELDS[index]
    if name == "category":
        return "\n".join(item.categories)
    if name == "feed":
        return item.feed_id
    value = getattr(item, name)
    return value or ""


class ItemContext:
    """One item as the nodes see it: folded fields, the hit table, lazy tokens and spans."""

    __slots__ = ("_spans", "_tokens", "big", "folded", "hits", "joined", "present_fields", "raw")

    def __init__(self, item: ItemData, fields: Sequence[int]) -> None:
        n = len(FIELDS)
        self.raw: list[str] = [""] * n
        self.folded: list[str] = [""] * n
        self.joined: list[str] = [""] * n
        self.present_fields: list[int] = []
        self.hits: dict[str, list[tuple[int, int]]] = {}
        self._tokens: dict[int, list[str]] = {}
        self._spans: dict[int, list[tuple[int, int]]] = {}
        parts: list[str] = []
        for f in fields:
            raw = _field_text(item, f)
            if not raw:
                continue
            self.raw[f] = raw
            folded = fold(raw)
            self.folded[f] = folded
            self.joined[f] = joined_tokens(folded)
            self.present_fields.append(f)
            parts.append(self.joined[f])
        self.big = ""
        if parts:
            # "\x02\x01tok\x01tok\x01" per field: a key never spans two fields.
            self.big = _FIELD_SEP + SEP + (SEP + _FIELD_SEP + SEP).join(parts) + SEP

    def tokens(self, field: int) -> list[str]:
        toks = self._tokens.get(field)
        if toks is None:
            j = self.joined[field]
            toks = self._tokens[field] = j.split(SEP) if j else []
        return toks

    def spans(self, field: int) -> list[tuple[int, int]]:
        sp = self._spans.get(field)
        if sp is None:
            sp = self._spans[field] = token_spans(self.folded[field])
        return sp


# --- scanning: item text -> hit table -------------------------------------------------------


class _ACScanner:
    """All keys in one Aho-Corasick automaton over the joined form."""

    def __init__(self, keys: Iterable[str]) -> None:
        assert _ahocorasick is not None
        self.keys = list(keys)
        self.auto: Any = None
        if self.keys:
            auto = _ahocorasick.Automaton(_ahocorasick.STORE_INTS)
            for i, k in enumerate(self.keys):
                auto.add_word(k, i)
            auto.make_automaton()
            self.auto = auto

    def scan(self, ctx: ItemContext) -> None:
        big = ctx.big
        if self.auto is None or not big:
            return
        hits = ctx.hits
        keys = self.keys
        starts: list[int] = []  # offset of each field's first SEP, in present_fields order
        pos = big.find(_FIELD_SEP)
        while pos >= 0:
            starts.append(pos + 1)
            pos = big.find(_FIELD_SEP, pos + 1)
        fields = ctx.present_fields
        for end, kid in self.auto.iter(big):
            key = keys[kid]
            start = end - len(key) + 1
            fi = bisect_right(starts, start) - 1
            tok = big.count(SEP, starts[fi], start)
            lst = hits.get(key)
            if lst is None:
                hits[key] = [(fields[fi], tok)]
            else:
                lst.append((fields[fi], tok))


class _DictScanner:
    """The same hit table by per-token dict lookups (no C extension needed)."""

    def __init__(self, keys: Iterable[str]) -> None:
        # first word -> [(key, words, last word is a prefix)]
        self.exact: dict[str, list[tuple[str, list[str], bool]]] = {}
        self.prefix: dict[int, dict[str, list[tuple[str, list[str], bool]]]] = {}
        for key in keys:
            is_prefix = not key.endswith(SEP)
            words = [w for w in key.split(SEP) if w]
            spec = (key, words, is_prefix)
            if is_prefix and len(words) == 1:
                self.prefix.setdefault(len(words[0]), {}).setdefault(words[0], []).append(spec)
            else:
                self.exact.setdefault(words[0], []).append(spec)
        self.lengths = sorted(self.prefix)

    def scan(self, ctx: ItemContext) -> None:
        hits = ctx.hits
        for f in ctx.present_fields:
            toks = ctx.tokens(f)
            for i, tok in enumerate(toks):
                specs = list(self.exact.get(tok, ()))
                for n in self.lengths:
                    if len(tok) >= n:
                        specs.extend(self.prefix[n].get(tok[:n], ()))
                for key, words, is_prefix in specs:
                    if self._rest_ok(toks, i, words, is_prefix):
                        hits.setdefault(key, []).append((f, i))

    @staticmethod
    def _rest_ok(toks: list[str], i: int, words: list[str], is_prefix: bool) -> bool:
        last = len(words) - 1
        for j in range(1, len(words)):
            if i + j >= len(toks):
                return False
            t = toks[i + j]
            if not (t.startswith(words[j]) if (is_prefix and j == last) else t == words[j]):
                return False
        return True


# --- the matcher ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One rule as the matcher sees it."""

    rule_id: str
    query: CompiledQuery
    feeds: frozenset[str] | None = None


class Matcher:
    """Many compiled queries, indexed by their anchors. `match` is the hot path."""

    def __init__(self, entries: Sequence[Entry], *, scanner: str = "auto") -> None:
        self.entries = list(entries)
        keys: dict[str, None] = {}
        mask = 0
        self.postings: dict[str, list[tuple[int, int]]] = {}
        self.full: list[int] = []
        self.always: list[int] = []
        for r, e in enumerate(self.entries):
            for node in e.query.nodes:
                if isinstance(node, Leaf):
                    keys[node.key] = None
                    mask |= node.mask
                elif isinstance(node, Regex):
                    mask |= node.mask
            clauses = e.query.clauses
            self.full.append((1 << len(clauses)) - 1)
            if not clauses:
                self.always.append(r)
            for i, clause in enumerate(clauses):
                for key in clause:
                    self.postings.setdefault(key, []).append((r, 1 << i))
        self.fields = [f for f in range(len(FIELDS)) if mask >> f & 1]
        use_ac = scanner == "ac" or (scanner == "auto" and _ahocorasick is not None)
        self.scanner: _ACScanner | _DictScanner = _ACScanner(keys) if use_ac else _DictScanner(keys)

    def context(self, item: ItemData) -> ItemContext:
        ctx = ItemContext(item, self.fields)
        self.scanner.scan(ctx)
        return ctx

    def candidates(self, ctx: ItemContext) -> list[int]:
        marks: dict[int, int] = {}
        postings = self.postings
        for key in ctx.hits:
            for r, bit in postings.get(key, ()):
                marks[r] = marks.get(r, 0) | bit
        full = self.full
        cands = [r for r, m in marks.items() if m == full[r]]
        cands.extend(self.always)
        cands.sort()
        return cands

    def match(self, item: ItemData, feed_tags: Collection[str] = ()) -> list[Hit]:
        ctx = self.context(item)
        out: list[Hit] = []
        entries = self.entries
        for r in self.candidates(ctx):
            e = entries[r]
            if (
                e.feeds is not None
                and item.feed_id not in e.feeds
                and e.feeds.isdisjoint(feed_tags)
            ):
                continue
            if e.query.root.test(ctx):
                out.append(explain(e.rule_id, e.query.root, ctx))
        return out


# --- explanations -----------------------------------------------------------------------------


def explain(rule_id: str, root: Node, ctx: ItemContext) -> Hit:
    raw: list[Evidence] = []
    root.explain(ctx, raw)
    evidence: list[tuple[int, int, int, str]] = []  # (field, char start, char end, label)
    for f, s, e, is_char, lab in raw:
        if not is_char:
            spans = ctx.spans(f)
            lab = label(ctx.tokens(f)[s:e])
            s, e = spans[s][0], spans[e - 1][1]
        evidence.append((f, s, e, lab))
    terms = tuple(dict.fromkeys(lab for *_, lab in evidence if lab))
    return Hit(rule_id=rule_id, terms=terms, snippet=snippet(ctx, evidence))


def snippet(ctx: ItemContext, evidence: list[tuple[int, int, int, str]]) -> str:
    if not evidence:
        return ""
    by_field: dict[int, list[tuple[int, int, str]]] = {}
    for f, s, e, lab in evidence:
        by_field.setdefault(f, []).append((s, e, lab))
    # The window: most distinct terms, then the earliest field and place ("the first hits").
    best: tuple[int, int, int, int] | None = None  # (-terms, field, lo, hi)
    for f, evs in by_field.items():
        evs.sort()
        labels = {x[2] for x in evs}
        for i, (s, _, _) in enumerate(evs):
            seen: set[str] = set()
            hi = evs[i][1]
            for x in evs[i:]:
                if x[1] > s + SNIPPET_WIDTH:
                    break
                if x[2] not in seen:
                    seen.add(x[2])
                    hi = max(hi, x[1])
                if seen == labels:
                    break
            cand = (-len(seen), f, s, hi)
            if best is None or cand < best:
                best = cand
    assert best is not None
    _, f, lo, hi = best
    text = ctx.raw[f]
    pad = max(0, (SNIPPET_WIDTH - (hi - lo)) // 2)
    ws = max(0, lo - pad)
    we = min(len(text), max(hi, ws + SNIPPET_WIDTH))
    if ws > 0:  # start at a word boundary
        cuts = [c for c in (text.find(" ", ws, lo), text.find("\n", ws, lo)) if c >= 0]
        if cuts:
            ws = min(cuts) + 1
    if we < len(text):
        cut = max(text.rfind(" ", hi, we), text.rfind("\n", hi, we))
        if cut > hi:
            we = cut
    marks = sorted({(s, e) for s, e, _ in by_field[f] if s >= ws and e <= we})
    merged: list[tuple[int, int]] = []
    for s, e in marks:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    pieces: list[str] = []
    pos = ws
    for s, e in merged:
        pieces.append(text[pos:s])
        pieces.append("«" + text[s:e] + "»")
        pos = e
    pieces.append(text[pos:we])
    body = " ".join("".join(pieces).split())
    return ("…" if ws > 0 else "") + body + ("…" if we < len(text) else "")


# --- one query -------------------------------------------------------------------------------


class CompiledQuery:
    """A parsed, validated query. `match(item)` / `match_text(text)` test it on its own."""

    def __init__(self, text: str, root: Node, clauses: tuple[Clause, ...]) -> None:
        self.text = text
        self.root = root
        self.clauses = clauses
        self.nodes = walk(root)
        self._matcher: Matcher | None = None

    def __repr__(self) -> str:
        return f"CompiledQuery({self.text!r})"

    def match(
        self, item: ItemData, feed_tags: Collection[str] = (), *, rule_id: str = "query"
    ) -> Hit | None:
        if self._matcher is None:
            self._matcher = Matcher([Entry(rule_id, self)])
        ctx = self._matcher.context(item)
        if self.root.test(ctx):
            return explain(rule_id, self.root, ctx)
        return None

    def match_text(self, text: str, *, rule_id: str = "query") -> Hit | None:
        """Test against free text, taken as an item's content (`title:` terms won't see it)."""
        return self.match(ItemData(feed_id="", guid="", url=None, title="", content=text),
                          rule_id=rule_id)  # fmt: skip


def compile_query(
    text: str,
    groups: Mapping[str, list[str]] | None = None,
    *,
    fields: Sequence[str] = DEFAULT_FIELDS,
) -> CompiledQuery:
    """Parse and validate one query; QueryError (with `.column`) if it cannot be used."""
    table = parse_groups(groups or {})
    return compile_parsed(text, q.parse(text), table, fields)


def compile_parsed(
    text: str, tree: q.SNode, groups: GroupTable, fields: Sequence[str] = DEFAULT_FIELDS
) -> CompiledQuery:
    root, clauses = compile_tree(text, tree, groups, field_mask(fields))
    return CompiledQuery(text, root, clauses)
