"""The compiled matcher: many queries against one item, and why each matched.

Per item (the hot path), in order:

1. Each field any rule reads is folded and tokenized once (text.py: a translate of the
   non-ASCII runs and one findall, in C) into its joined form `\x01tok\x01tok\x01`.
2. One Aho-Corasick pass (pyahocorasick, in C) per field finds every search key of every rule
   at once: words, prefixes and whole phrases. Keys are shared between rules, so 10,000 rules
   that mention "missile" add one key. What is kept is the set of key ids found per field
   (built in C); where a key occurs is looked up again (str.find) only when a node needs it.
3. Candidate rules: each rule has up to three anchor clauses (compiler.py) and is a candidate
   when every clause has a key in the item: set unions and intersections of posting tuples,
   in C (`Matcher.candidates`). Rules without anchors (only /regex/ terms) are always
   candidates. The work follows the keys found, not the number of rules.
4. Each candidate's node tree is tested: words, phrases and groups are set lookups; NEAR and
   phrases with a wildcard inside look at token positions.
5. For a match, the nodes explain themselves: the matched terms (normalized, in query order)
   and a snippet of about 200 characters of the original text around the first cluster with
   the most distinct terms, each hit wrapped in « ». Character spans are computed only now
   (one re.split per field), and rules matching for the same occurrences share the result.

pyahocorasick is a dependency; tests/rules_oracle.py holds a pure-Python scanner (dict lookups
per token) that must find the same hit table, as an oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Final, Protocol

import ahocorasick

from monitor.records import Hit, ItemData
from monitor.rules.nodes import (
    FIELDS,
    Clause,
    Evidence,
    ItemContext,
    Leaf,
    Node,
    Regex,
    intern_key,
    walk,
)

SNIPPET_WIDTH: Final = 200


# --- scanning: item text -> hit table -------------------------------------------------------


class Scanner(Protocol):
    """Fills `ctx.keys_by_field` with the ids of the search keys found in each field."""

    def scan(self, ctx: ItemContext) -> None: ...


class ACScanner:
    """All keys in one Aho-Corasick automaton, run over each field's wrapped form."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.auto: Any = None
        auto = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for k in keys:
            auto.add_word(k, intern_key(k))
        if len(auto):
            auto.make_automaton()
            self.auto = auto

    def scan(self, ctx: ItemContext) -> None:
        if self.auto is None:
            return
        for f in ctx.present_fields:
            found = set(map(_second, self.auto.iter(ctx.wrapped[f])))  # all in C
            if found:
                ctx.keys_by_field[f] = found


_second = itemgetter(1)


# --- the matcher ----------------------------------------------------------------------------


def in_scope(scope: frozenset[str] | None, feed_id: str, feed_tags: Collection[str]) -> bool:
    """A rule's `feeds:` scope: None takes every feed; else the feed's id or one of its tags."""
    return scope is None or feed_id in scope or not scope.isdisjoint(feed_tags)


@dataclass(frozen=True, slots=True)
class Entry:
    """One rule as the matcher sees it."""

    rule_id: str
    query: CompiledQuery
    feeds: frozenset[str] | None = None


class Matcher:
    """Many compiled queries, indexed by their anchors. `match` is the hot path.

    Each rule is posted under the keys of its first (cheapest) anchor clause only; when one of
    those keys occurs, the rule's other clauses are checked with set operations before its
    tree is evaluated.
    """

    def __init__(
        self,
        entries: Sequence[Entry],
        *,
        scanner: Callable[[Iterable[str]], Scanner] = ACScanner,
    ) -> None:
        self.entries = list(entries)
        keys: dict[str, None] = {}
        mask = 0
        # post[j][key id] = rules whose j-th anchor clause contains that key
        post: list[dict[int, list[int]]] = [{}, {}, {}]
        by_count: list[set[int]] = [set(), set(), set(), set()]  # rules by number of clauses
        for r, e in enumerate(self.entries):
            for node in e.query.nodes:
                if isinstance(node, Leaf):
                    keys[node.key] = None
                    mask |= node.mask
                elif isinstance(node, Regex):
                    mask |= node.mask
            clauses = e.query.clauses[:3]
            by_count[len(clauses)].add(r)
            for j, clause in enumerate(clauses):
                for k in clause:
                    post[j].setdefault(intern_key(k), []).append(r)
        self.post = [{k: tuple(v) for k, v in p.items()} for p in post]
        self.always = sorted(by_count[0])
        self.one, self.two = frozenset(by_count[1]), frozenset(by_count[2])
        self.mask = mask
        self.fields = [f for f in range(len(FIELDS)) if mask >> f & 1]
        self.scanner = scanner(keys)

    def context(self, item: ItemData) -> ItemContext:
        ctx = ItemContext(item, self.fields)
        self.scanner.scan(ctx)
        return ctx

    def _satisfied(self, j: int, found: AbstractSet[int]) -> set[int]:
        p = self.post[j]
        return set().union(*map(p.__getitem__, filter(p.__contains__, found)))  # all in C

    def candidates(self, ctx: ItemContext) -> list[int]:
        """Rules whose every anchor clause has a key in the item, in watchlist order.

        Set algebra, all in C: A_j = rules whose clause j is satisfied; a rule with c clauses
        is a candidate when it is in A_0 .. A_(c-1).
        """
        found = ctx.keys_in(self.mask)
        a0 = self._satisfied(0, found)
        cands = a0 & self.one
        if len(a0) > len(cands):
            both = a0 & self._satisfied(1, found)
            cands |= both & self.two
            if both:
                cands |= both & self._satisfied(2, found)
        if self.always:
            cands.update(self.always)
        return sorted(cands)

    def match(self, item: ItemData, feed_tags: Collection[str] = ()) -> list[Hit]:
        ctx = self.context(item)
        out: list[Hit] = []
        entries = self.entries
        for r in self.candidates(ctx):
            e = entries[r]
            if e.feeds is not None and not in_scope(e.feeds, item.feed_id, feed_tags):
                continue
            if e.query.root.test(ctx):
                out.append(explain(e.rule_id, e.query.root, ctx))
        return out


# --- explanations -----------------------------------------------------------------------------


def explain(rule_id: str, root: Node, ctx: ItemContext) -> Hit:
    raw: list[Evidence] = []
    root.explain(ctx, raw)
    # Rules that match an item for the same reasons (same occurrences) share the work: with
    # many rules about the same entities this is most hits.
    key = tuple(raw)
    done = ctx.explained.get(key)
    if done is None:
        evidence: list[tuple[int, int, int, str]] = []  # (field, char start, char end, label)
        for f, s, e, is_char, lab in raw:
            if not is_char:
                lab = ctx.label(f, s, e)
                s, e = ctx.span(f, s, e)
            evidence.append((f, s, e, lab))
        terms = tuple(dict.fromkeys(lab for *_, lab in evidence if lab))
        done = ctx.explained[key] = (terms, snippet(ctx, evidence))
    return Hit(rule_id=rule_id, terms=done[0], snippet=done[1])


def snippet(ctx: ItemContext, evidence: list[tuple[int, int, int, str]]) -> str:
    if not evidence:
        return ""
    by_field: dict[int, list[tuple[int, int, str]]] = {}
    for f, s, e, lab in evidence:
        by_field.setdefault(f, []).append((s, e, lab))
    # The window: most distinct terms within SNIPPET_WIDTH characters, then the earliest
    # field and place ("the first hits"). A sliding window over the sorted evidence.
    best: tuple[int, int, int, int] | None = None  # (-terms, field, i, j)
    for f, evs in by_field.items():
        evs = by_field[f] = sorted(set(evs))
        n = len(evs)
        counts: dict[str, int] = {}
        j = 0
        for i in range(n):
            limit = evs[i][0] + SNIPPET_WIDTH
            if j <= i:
                counts[evs[i][2]] = counts.get(evs[i][2], 0) + 1
                j = i + 1
            while j < n and evs[j][1] <= limit:
                counts[evs[j][2]] = counts.get(evs[j][2], 0) + 1
                j += 1
            cand = (-len(counts), f, i, j)
            if best is None or cand < best:
                best = cand
            lab = evs[i][2]
            counts[lab] -= 1
            if not counts[lab]:
                del counts[lab]
    assert best is not None
    _, f, i, j = best
    window = by_field[f][i:j]
    lo = window[0][0]
    # end: the last first-occurrence of a label in the window (keep the window tight)
    seen: set[str] = set()
    hi = window[0][1]
    for _, e, lab in window:
        if lab not in seen:
            seen.add(lab)
            hi = max(hi, e)
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
