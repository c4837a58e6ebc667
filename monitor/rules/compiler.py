"""Query text -> a CompiledQuery: syntax tree to nodes, validation, and the anchors the
matcher's index needs. `compile_query` is the one entry point, for a query string and for a
rule's structured form (`QueryParts`: query / all / any / none) alike.

**Anchors.** Each query also gets up to three *clauses*, sets of keys such that whenever the
query matches an item, at least one key of every clause occurs in that item. The matcher
evaluates a rule only for items where all its clauses are satisfied, so the work per item
follows the terms it contains, not the number of rules. A leaf gives {its key}; AND and NEAR
give all their children's clauses; OR distributes over its children's clauses (a clause of
each child, united: `(a AND b) OR c` gives {a, c} and {b, c}), none if a child has none; NOT
and regexes give none. The three cheapest clauses are kept (a phrase before a long word before
a short word or a prefix; stop words last).

**Errors.** A query string that cannot be used raises `QuerySyntaxError` (a QueryError with
the 1-based column). A structured form raises `QueryPartsError`, which lists every problem
with the part (`query`, `all`, `any`, `none`, or None for the rule as a whole) and the index
within it, so that the watchlist loader can point at the line of the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Final

from monitor.errors import QueryError
from monitor.rules import query as q
from monitor.rules.matcher import CompiledQuery
from monitor.rules.nodes import (
    DEFAULT_FIELDS,
    MIN_PREFIX,
    And,
    Clause,
    Leaf,
    Near,
    Node,
    Not,
    Or,
    Regex,
    field_mask,
    matches_empty,
)
from monitor.rules.regexsafe import RegexTerm, UnsafeRegex
from monitor.rules.text import SEP, is_cjk, tokens

# --- anchors ------------------------------------------------------------------------------

_STOPWORD_TEXT: Final = (
    "a an the of to in on at for and or not is are was were be by with from as that this it its "
    "he she they we you his her their our has have had will would said says new us"
)
_STOPWORDS: Final = frozenset(_STOPWORD_TEXT.split())


def key_cost(key: str) -> float:
    """Rough cost of anchoring on a key: how often it is expected to occur."""
    words = [w for w in key.split(SEP) if w]
    prefix = not key.endswith(SEP)
    if len(words) > 1 and not all(is_cjk(w) for w in words):
        return 1.0
    if len(words) > 1:  # a CJK phrase: the longer, the rarer
        return max(1.0, 8.0 / len(words))
    w = words[0] if words else ""
    if is_cjk(w):
        return 8.0
    if w in _STOPWORDS:
        return 50.0
    base = 2.0 if len(w) >= 6 else 3.0 if len(w) >= 4 else 5.0
    return base * (2.0 if prefix else 1.0)


def clause_cost(c: AbstractSet[str]) -> float:
    return sum(key_cost(k) for k in c)


def anchors(node: Node) -> list[Clause]:
    if isinstance(node, Leaf):
        return [frozenset((node.key,))]
    if isinstance(node, And | Near):
        out: list[Clause] = []
        for k in node.children():
            out.extend(anchors(k))
        return out
    if isinstance(node, Or):
        # (a AND b) OR (c AND d) = (a OR c)(a OR d)(b OR c)(b OR d): distribute, keeping the
        # cheapest few combinations (any subset of the clauses is still implied).
        combos: list[Clause] = [frozenset()]
        for k in node.operands:
            cs = anchors(k)
            if not cs:
                return []
            best = sorted(set(cs), key=clause_cost)[:3]
            combos = [c | d for c in combos for d in best]
            if len(combos) > 9:
                combos = sorted(set(combos), key=clause_cost)[:9]
        return combos
    return []  # Not, Regex


def best_clauses(node: Node, limit: int = 3) -> tuple[Clause, ...]:
    uniq = list(dict.fromkeys(anchors(node)))
    uniq.sort(key=clause_cost)
    return tuple(uniq[:limit])


# --- compiling ----------------------------------------------------------------------------


class BrokenGroup(q.QuerySyntaxError):
    """A reference to a group whose own definition failed (already reported there)."""


class GroupTable:
    """The watchlist's groups, each member parsed once: name -> syntax trees, or the reason
    the group is invalid (a rule using it is then not reported again)."""

    def __init__(self, entries: Mapping[str, Sequence[q.SNode] | str] | None = None) -> None:
        self.entries: dict[str, Sequence[q.SNode] | str] = dict(entries or {})

    @classmethod
    def parse(cls, groups: Mapping[str, Sequence[str]]) -> GroupTable:
        """Parse every member of every group; a group with a bad member becomes its error."""
        table = cls()
        for name, members in groups.items():
            try:
                table.entries[name] = [parse_member(name, m) for m in members]
            except q.QuerySyntaxError as exc:
                table.entries[name] = f"member {exc.query!r}: {exc.reason}"
        return table

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __getitem__(self, name: str) -> Sequence[q.SNode] | str:
        return self.entries[name]

    def names(self) -> list[str]:
        return sorted(self.entries)


def parse_member(group: str, text: str) -> q.SNode:
    node = q.parse(text)
    for sub in _syntax_walk(node):
        if isinstance(sub, q.SGroup):
            raise q.QuerySyntaxError(
                f"a group cannot use another group (@{sub.name} in @{group})",
                query=text,
                column=sub.column,
            )
    return node


def _syntax_walk(node: q.SNode) -> list[q.SNode]:
    out: list[q.SNode] = [node]
    if isinstance(node, q.SField | q.SNot):
        out.extend(_syntax_walk(node.child))
    elif isinstance(node, q.SAnd | q.SOr):
        for k in node.children:
            out.extend(_syntax_walk(k))
    elif isinstance(node, q.SNear):
        out.extend(_syntax_walk(node.left))
        out.extend(_syntax_walk(node.right))
    return out


class Compiler:
    """Turns syntax trees into nodes; raises QuerySyntaxError with a column."""

    def __init__(self, text: str, groups: GroupTable) -> None:
        self.text = text
        self.groups = groups

    def error(self, reason: str, column: int) -> q.QuerySyntaxError:
        return q.QuerySyntaxError(reason, query=self.text, column=column)

    def compile(self, node: q.SNode, mask: int) -> Node:
        handler: Callable[[q.SNode, int], Node] = getattr(self, "_" + type(node).__name__)
        return handler(node, mask)

    def _SWords(self, node: q.SNode, mask: int) -> Node:
        assert isinstance(node, q.SWords)
        words: list[tuple[str, bool]] = []
        for w in node.words:
            if w.text == "NEAR":
                raise self.error("NEAR needs a distance: write NEAR/n, e.g. NEAR/10", w.column)
            if w.text.startswith("NEAR/"):
                raise self.error(
                    f"NEAR needs a number of words after the slash, e.g. NEAR/10 (not {w.text})",
                    w.column,
                )
            words.extend(self._chunk(w.text, w.column))
        return self._leaf(words, mask, node.column)

    def _SQuoted(self, node: q.SNode, mask: int) -> Node:
        assert isinstance(node, q.SQuoted)
        words: list[tuple[str, bool]] = []
        offset = 0
        for chunk in node.text.split():
            offset = node.text.index(chunk, offset)
            words.extend(self._chunk(chunk, node.column + 1 + offset))
            offset += len(chunk)
        return self._leaf(words, mask, node.column)

    def _chunk(self, text: str, column: int) -> list[tuple[str, bool]]:
        star = text.find("*")
        if 0 <= star < len(text) - 1 or text == "*":
            raise self.error("'*' is only allowed at the end of a word (missile*)", column + star)
        prefix = text.endswith("*")
        toks = tokens(text[:-1] if prefix else text)
        out = [(t, False) for t in toks]
        if prefix and out:
            last = out[-1][0]
            if is_cjk(last):
                return out  # CJK is matched as a substring anyway
            if len(last) < MIN_PREFIX:
                raise self.error(
                    f"a wildcard needs at least {MIN_PREFIX} letters before '*'", column
                )
            out[-1] = (last, True)
        return out

    def _leaf(self, words: list[tuple[str, bool]], mask: int, column: int) -> Node:
        if not words:
            raise self.error("nothing to search for: no letters or digits", column)
        return Leaf(tuple(words), mask)

    def _SGroup(self, node: q.SNode, mask: int) -> Node:
        assert isinstance(node, q.SGroup)
        if node.name not in self.groups:
            known = ", ".join(self.groups.names()) or "none defined"
            raise self.error(f"unknown group @{node.name} (groups: {known})", node.column)
        members = self.groups[node.name]
        if isinstance(members, str):
            raise BrokenGroup(
                f"group @{node.name} is invalid: {members}", query=self.text, column=node.column
            )
        if not members:
            raise self.error(f"group @{node.name} is empty", node.column)
        try:
            alternatives = [self.compile(m, mask) for m in members]
        except q.QuerySyntaxError as exc:
            raise self.error(f"in group @{node.name}: {exc.reason}", node.column) from None
        return alternatives[0] if len(alternatives) == 1 else Or(alternatives)

    def _SRegex(self, node: q.SNode, mask: int) -> Node:
        assert isinstance(node, q.SRegex)
        try:
            term = RegexTerm(node.pattern, node.case_sensitive)
        except UnsafeRegex as exc:
            raise self.error(str(exc), node.column + 1 + exc.offset) from None
        return Regex(term, mask)

    def _SField(self, node: q.SNode, mask: int) -> Node:
        assert isinstance(node, q.SField)
        return self.compile(node.child, field_mask([node.field]))

    def _SNot(self, node: q.SNode, mask: int) -> Node:
        assert isinstance(node, q.SNot)
        return Not(self.compile(node.child, mask))

    def _SAnd(self, node: q.SNode, mask: int) -> Node:
        assert isinstance(node, q.SAnd)
        return And([self.compile(k, mask) for k in node.children])

    def _SOr(self, node: q.SNode, mask: int) -> Node:
        assert isinstance(node, q.SOr)
        return Or([self.compile(k, mask) for k in node.children])

    def _SNear(self, node: q.SNode, mask: int) -> Node:
        assert isinstance(node, q.SNear)
        left = self.compile(node.left, mask)
        right = self.compile(node.right, mask)
        for side, syn in ((left, node.left), (right, node.right)):
            if not side.positional():
                raise self.error(
                    "NEAR works on words, phrases, groups of them and OR; "
                    "not on AND, NOT or /regex/",
                    _start(syn),
                )
        return Near(left, right, node.distance)


def _start(node: q.SNode) -> int:
    if isinstance(node, q.SNear):
        return _start(node.left)
    return node.column


_OPERATOR_WORDS: Final = {"and": "AND", "or": "OR", "not": "NOT"}


def lint(text: str) -> list[tuple[int, str]]:
    """Likely mistakes that are not errors, as (column, message): an operator written in lower
    case (`and`, `or`, `not`, `near/5`) among bare words is read as a word of the phrase.
    A query that does not parse has none (its error says enough)."""
    try:
        tree = q.parse(text)
    except q.QuerySyntaxError:
        return []
    out: list[tuple[int, str]] = []
    for node in _syntax_walk(tree):
        if not isinstance(node, q.SWords):
            continue
        phrase = " ".join(w.text for w in node.words)
        for w in node.words:
            low = w.text.lower()
            if low in _OPERATOR_WORDS and w.text != w.text.upper():
                op = _OPERATOR_WORDS[low]
                out.append(
                    (w.column, f"{w.text!r} in lower case is read as a word of the phrase "
                     f"{phrase!r}; to combine terms write {op}")
                )  # fmt: skip
            elif low.startswith("near/") and not w.text.startswith("NEAR/"):
                out.append(
                    (w.column, f"{w.text!r} is read as words of the phrase {phrase!r}; the "
                     f"operator is written in capitals: {w.text.upper()}")
                )  # fmt: skip
    return out


ALL_NEGATIVE: Final = (
    "the query only excludes (like -basketball alone), so it would match every item; "
    "add a term to look for"
)
NO_QUERY: Final = "no query: give `query:`, or `all:` / `any:` (and `none:`)"


@dataclass(frozen=True, slots=True)
class QueryParts:
    """A rule's structured form: `query` and every `all` must match, at least one `any`,
    no `none`."""

    query: str | None = None
    all: tuple[str, ...] | None = None
    any: tuple[str, ...] | None = None
    none: tuple[str, ...] | None = None

    def named(self) -> list[tuple[str, tuple[str, ...]]]:
        """(part, texts) for each part given, in the order above."""
        out: list[tuple[str, tuple[str, ...]]] = []
        if self.query is not None:
            out.append(("query", (self.query,)))
        for name in ("all", "any", "none"):
            texts = getattr(self, name)
            if texts is not None:
                out.append((name, texts))
        return out


@dataclass(frozen=True, slots=True)
class PartProblem:
    """One problem of a structured query. `part` None: the rule as a whole; `index` None:
    the part as a whole. `error` is set for a query text that does not parse (its column)."""

    part: str | None
    index: int | None
    reason: str
    error: q.QuerySyntaxError | None = None


class QueryPartsError(QueryError):
    """Every problem of a structured query (BrokenGroup references left out: those are
    reported where the group is defined)."""

    def __init__(self, problems: list[PartProblem]) -> None:
        self.parts = problems
        super().__init__(problems[0].reason if problems else "invalid query")


Groups = Mapping[str, Sequence[str]]


def compile_query(
    query: str | QueryParts,
    groups: GroupTable | Groups | None = None,
    *,
    fields: Sequence[str] = DEFAULT_FIELDS,
) -> CompiledQuery:
    """Parse, compile and validate a query string or a rule's structured form."""
    table = groups if isinstance(groups, GroupTable) else GroupTable.parse(groups or {})
    mask = field_mask(fields)
    if isinstance(query, str):
        root = Compiler(query, table).compile(q.parse(query), mask)
        if matches_empty(root):
            raise q.QuerySyntaxError(ALL_NEGATIVE, query=query, column=1)
        return CompiledQuery(query, root, best_clauses(root))
    return _compile_parts(query, table, mask)


def _compile_parts(parts: QueryParts, table: GroupTable, mask: int) -> CompiledQuery:
    problems: list[PartProblem] = []
    compiled: dict[str, list[tuple[Node, str]]] = {}
    broken = False
    for name, texts in parts.named():
        if not texts:
            problems.append(PartProblem(name, None, f"{name}: is an empty list"))
        for j, text in enumerate(texts):
            try:
                node = Compiler(text, table).compile(q.parse(text), mask)
            except BrokenGroup:
                broken = True
                continue
            except q.QuerySyntaxError as exc:
                index = None if name == "query" else j
                problems.append(PartProblem(name, index, exc.reason, exc))
                continue
            compiled.setdefault(name, []).append((node, text))
    if problems or broken:
        raise QueryPartsError(problems)
    if not any(k in compiled for k in ("query", "all", "any")):
        if "none" in compiled:
            raise QueryPartsError([PartProblem("none", None, ALL_NEGATIVE)])
        raise QueryPartsError([PartProblem(None, None, NO_QUERY)])
    root, text = _combine(compiled)
    if matches_empty(root):
        where = "query" if parts.query is not None else None
        raise QueryPartsError([PartProblem(where, None, ALL_NEGATIVE)])
    return CompiledQuery(text, root, best_clauses(root))


def _combine(parts: dict[str, list[tuple[Node, str]]]) -> tuple[Node, str]:
    """query / all / any / none -> one node, and an equivalent query text for display."""
    if list(parts) == ["query"]:
        return parts["query"][0]
    operands: list[Node] = []
    texts: list[str] = []
    for node, text in parts.get("query", []) + parts.get("all", []):
        operands.append(node)
        texts.append(f"({text})")
    if "any" in parts:
        anys = parts["any"]
        operands.append(anys[0][0] if len(anys) == 1 else Or([n for n, _ in anys]))
        texts.append("(" + " OR ".join(f"({t})" for _, t in anys) + ")" if len(anys) > 1
                     else f"({anys[0][1]})")  # fmt: skip
    if "none" in parts:
        nones = parts["none"]
        operands.append(Not(nones[0][0] if len(nones) == 1 else Or([n for n, _ in nones])))
        texts.append("-(" + " OR ".join(f"({t})" for _, t in nones) + ")" if len(nones) > 1
                     else f"-({nones[0][1]})")  # fmt: skip
    node = operands[0] if len(operands) == 1 else And(operands)
    shown = " + ".join(t for t in texts if not t.startswith("-"))
    return node, shown + "".join(" " + t for t in texts if t.startswith("-"))
