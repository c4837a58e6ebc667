"""Syntax tree -> executable nodes, with validation and the anchors the index needs.

A compiled query is a small tree of nodes, each able to say whether it holds for one item
(`test`), where it holds (`occ`, for words, phrases and NEAR: occurrences as
(field, first token, end token)), and why (`explain`, evidence for terms and snippet). Nodes
never look at raw text except `Regex`: words and phrases read which search keys the matcher
found in each field (and, for positions, the joined form of the field: see text.py). Each
distinct key gets a small int id, shared by all queries in the process:

    missile        -> "\\x01missile\\x01"          exact word
    missile*       -> "\\x01missile"               prefix
    North Korea    -> "\\x01north\\x01korea\\x01"   phrase, found in one pass like a word
    nucl* weapon   -> "\\x01nucl" + check "weapon" on the next token (a prefix inside a phrase)

**Anchors.** Each query also gets up to three *clauses*, sets of keys such that whenever the
query matches an item, at least one key of every clause occurs in that item. The matcher
evaluates a rule only for items where all its clauses are satisfied, so the work per item
follows the terms it contains, not the number of rules. A leaf gives {its key}; AND and NEAR
give all their children's clauses; OR distributes over its children's clauses (a clause of
each child, united: `(a AND b) OR c` gives {a, c} and {b, c}), none if a child has none; NOT
and regexes give none. The three cheapest clauses are kept (a phrase before a long word before
a short word or a prefix; stop words last).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Final

from monitor.rules import query as q
from monitor.rules.regexsafe import RegexTerm, UnsafeRegex
from monitor.rules.text import SEP, is_cjk, tokens

if TYPE_CHECKING:
    from monitor.rules.matcher import ItemContext

FIELDS: Final = ("title", "summary", "content", "source", "author", "category", "url", "feed")
FIELD_INDEX: Final = {f: i for i, f in enumerate(FIELDS)}
TEXT_FIELDS: Final = ("title", "summary", "content")
DEFAULT_FIELDS: Final = TEXT_FIELDS
SCOPES: Final = (*FIELDS, "text")
MIN_PREFIX: Final = 3
EXPLAIN_LIMIT: Final = 8  # occurrences per term kept as evidence (terms and snippet)


def field_mask(fields: Sequence[str]) -> int:
    mask = 0
    for f in fields:
        for g in TEXT_FIELDS if f == "text" else (f,):
            mask |= 1 << FIELD_INDEX[g]
    return mask


Occ = tuple[int, int, int]  # (field, first token, end token exclusive)
# Evidence: (field, start, end, is_char_span, label or ""): token spans get labels later.
Evidence = tuple[int, int, int, bool, str]


class Node(ABC):
    __slots__ = ()

    @abstractmethod
    def test(self, ctx: ItemContext) -> bool:
        """Whether the item satisfies this node."""

    def explain(self, ctx: ItemContext, out: list[Evidence]) -> None:  # noqa: B027 (no-op default)
        """Append evidence; only called where `test` is true and not under a NOT."""

    def positional(self) -> bool:
        return False

    def occ(self, ctx: ItemContext) -> list[Occ]:
        """Where the node occurs (token spans); only positional nodes are asked."""
        raise TypeError(f"{type(self).__name__} has no positions")  # positional() is False

    def children(self) -> Sequence[Node]:
        return ()


_KEY_IDS: dict[str, int] = {}


def key_id(key: str) -> int:
    """A small int per distinct search key, shared by every compiled query in the process
    (so a leaf's id means the same to every matcher, and hit tables are keyed by ints)."""
    kid = _KEY_IDS.get(key)
    if kid is None:
        kid = _KEY_IDS.setdefault(key, len(_KEY_IDS))
    return kid


class Leaf(Node):
    """A word, prefix or phrase, in the fields of `mask`."""

    __slots__ = ("key", "kid", "mask", "n", "rest", "words")

    def __init__(self, words: tuple[tuple[str, bool], ...], mask: int) -> None:
        self.words = words
        self.mask = mask
        self.n = len(words)
        self.key, self.rest = search_key(words)
        self.kid = key_id(self.key)

    def positional(self) -> bool:
        return True

    def test(self, ctx: ItemContext) -> bool:
        # The hit table knows in which fields each key occurs: most leaves need nothing else.
        found = ctx.kin.get(self.mask)
        if found is None:
            found = ctx.keys_in(self.mask)
        if self.kid not in found:
            return False
        return not self.rest or bool(self.occ(ctx))

    def occ(self, ctx: ItemContext) -> list[Occ]:
        cache_key = (self.kid, self.mask)
        cached = ctx.occ_cache.get(cache_key)  # many rules share a term: compute it once
        if cached is None:
            cached = ctx.occ_cache[cache_key] = self._occ(ctx)
        return cached

    def _occ(self, ctx: ItemContext) -> list[Occ]:
        out: list[Occ] = []
        key, kid, n = self.key, self.kid, self.n
        for f, kids in ctx.kids.items():
            if not (self.mask >> f & 1 and kid in kids):
                continue
            # The scanner said the key is in this field; str.find (in C) says where.
            wrapped = ctx.wrapped[f]
            pos = wrapped.find(key)
            while pos >= 0:
                t = ctx.token_at(f, pos)
                if not self.rest or self._verify(ctx, f, t):
                    out.append((f, t, t + n))
                pos = wrapped.find(key, pos + 1)
        out.sort()
        return out

    def _verify(self, ctx: ItemContext, field: int, start: int) -> bool:
        toks = ctx.tokens(field)
        for offset, word, prefix in self.rest:
            i = start + offset
            if i >= len(toks):
                return False
            tok = toks[i]
            if not (tok.startswith(word) if prefix else tok == word):
                return False
        return True

    def explain(self, ctx: ItemContext, out: list[Evidence]) -> None:
        for f, s, e in self.occ(ctx)[:EXPLAIN_LIMIT]:
            out.append((f, s, e, False, ""))


def search_key(
    words: tuple[tuple[str, bool], ...],
) -> tuple[str, tuple[tuple[int, str, bool], ...]]:
    """The substring of the joined form that finds these words, and what to check after it."""
    parts: list[str] = []
    for i, (w, prefix) in enumerate(words):
        parts.append(w)
        if prefix:
            rest = tuple((j, w2, p2) for j, (w2, p2) in enumerate(words) if j > i)
            return SEP + SEP.join(parts), rest
    return SEP + SEP.join(parts) + SEP, ()


class Regex(Node):
    __slots__ = ("mask", "term")

    def __init__(self, term: RegexTerm, mask: int) -> None:
        self.term = term
        self.mask = mask

    def test(self, ctx: ItemContext) -> bool:
        return any(self.mask >> f & 1 and self.term.search(ctx.raw[f]) for f in ctx.present_fields)

    def explain(self, ctx: ItemContext, out: list[Evidence]) -> None:
        for f in ctx.present_fields:
            if self.mask >> f & 1:
                raw = ctx.raw[f]
                for s, e in self.term.finditer(raw, EXPLAIN_LIMIT):
                    lab = " ".join(raw[s:e].casefold().split())
                    out.append((f, s, e, True, lab[:60]))


class Not(Node):
    __slots__ = ("child",)

    def __init__(self, child: Node) -> None:
        self.child = child

    def test(self, ctx: ItemContext) -> bool:
        return not self.child.test(ctx)

    def explain(self, ctx: ItemContext, out: list[Evidence]) -> None:
        if isinstance(self.child, Not):  # NOT NOT x: x is evidence
            self.child.child.explain(ctx, out)

    def children(self) -> Sequence[Node]:
        return (self.child,)


class And(Node):
    __slots__ = ("kids",)

    def __init__(self, kids: Sequence[Node]) -> None:
        # Negations last: they are only worth testing once the positive part holds.
        self.kids = tuple(sorted(kids, key=lambda k: isinstance(k, Not)))

    def test(self, ctx: ItemContext) -> bool:
        for k in self.kids:  # noqa: SIM110 - a plain loop is faster than all() on the hot path
            if not k.test(ctx):
                return False
        return True

    def explain(self, ctx: ItemContext, out: list[Evidence]) -> None:
        for k in self.kids:
            k.explain(ctx, out)

    def children(self) -> Sequence[Node]:
        return self.kids


class Or(Node):
    __slots__ = ("kids", "leaf_ids", "leaf_mask")

    def __init__(self, kids: Sequence[Node]) -> None:
        self.kids = tuple(kids)
        # An OR of plain words and phrases in the same fields (a group, typically) is tested
        # with one set operation on the hit table.
        self.leaf_ids: frozenset[int] | None = None
        self.leaf_mask = 0
        masks = {k.mask for k in self.kids if isinstance(k, Leaf)}
        if len(masks) == 1 and all(isinstance(k, Leaf) and not k.rest for k in self.kids):
            self.leaf_ids = frozenset(k.kid for k in self.kids if isinstance(k, Leaf))
            self.leaf_mask = masks.pop()

    def test(self, ctx: ItemContext) -> bool:
        if self.leaf_ids is not None:
            return not ctx.keys_in(self.leaf_mask).isdisjoint(self.leaf_ids)
        for k in self.kids:  # noqa: SIM110 - as in And.test
            if k.test(ctx):
                return True
        return False

    def positional(self) -> bool:
        return all(k.positional() for k in self.kids)

    def occ(self, ctx: ItemContext) -> list[Occ]:
        out: list[Occ] = []
        for k in self.kids:
            out.extend(k.occ(ctx))
        return out

    def explain(self, ctx: ItemContext, out: list[Evidence]) -> None:
        for k in self.kids:
            if k.test(ctx):
                k.explain(ctx, out)

    def children(self) -> Sequence[Node]:
        return self.kids


class Near(Node):
    """Both sides in the same field with at most `distance` tokens between them."""

    __slots__ = ("distance", "left", "right")

    def __init__(self, left: Node, right: Node, distance: int) -> None:
        self.left = left
        self.right = right
        self.distance = distance

    def positional(self) -> bool:
        return True

    def _pairs(self, ctx: ItemContext, first_only: bool) -> tuple[list[Occ], list[Occ]]:
        """The occurrences of each side that have a partner close enough."""
        a = self.left.occ(ctx)
        if not a:
            return [], []
        b = self.right.occ(ctx)
        if not b:
            return [], []
        d = self.distance
        found_a: dict[Occ, None] = {}
        found_b: dict[Occ, None] = {}
        for oa in a:
            fa, sa, ea = oa
            for ob in b:
                fb, sb, eb = ob
                if fa == fb and max(sa, sb) - min(ea, eb) <= d:
                    if first_only:
                        return [oa], [ob]
                    found_a[oa] = None
                    found_b[ob] = None
        return sorted(found_a), sorted(found_b)

    def test(self, ctx: ItemContext) -> bool:
        return bool(self._pairs(ctx, True)[0])

    def occ(self, ctx: ItemContext) -> list[Occ]:
        a, b = self._pairs(ctx, False)
        return sorted(set(a) | set(b))

    def explain(self, ctx: ItemContext, out: list[Evidence]) -> None:
        a, b = self._pairs(ctx, False)
        for f, s, e in a[:EXPLAIN_LIMIT] + b[:EXPLAIN_LIMIT]:
            out.append((f, s, e, False, ""))

    def children(self) -> Sequence[Node]:
        return (self.left, self.right)


def walk(node: Node) -> list[Node]:
    out = [node]
    for k in node.children():
        out.extend(walk(k))
    return out


def matches_empty(node: Node) -> bool:
    """Would the query hold for an item with no text at all (i.e. it only excludes)?"""
    if isinstance(node, Not):
        return not matches_empty(node.child)
    if isinstance(node, And):
        return all(matches_empty(k) for k in node.kids)
    if isinstance(node, Or):
        return any(matches_empty(k) for k in node.kids)
    return False


# --- anchors ------------------------------------------------------------------------------

Clause = frozenset[str]

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
        for k in node.kids:
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


GroupTable = Mapping[str, "Sequence[q.SNode] | str"]  # str: why the group is invalid


def parse_groups(groups: Mapping[str, Sequence[str]]) -> dict[str, list[q.SNode] | str]:
    """Parse every member of every group; a group with a bad member becomes its error."""
    out: dict[str, list[q.SNode] | str] = {}
    for name, members in groups.items():
        try:
            out[name] = [parse_member(name, m) for m in members]
        except q.QuerySyntaxError as exc:
            out[name] = f"member {exc.query!r}: {exc.reason}"
    return out


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
            known = ", ".join(sorted(self.groups)) or "none defined"
            raise self.error(f"unknown group @{node.name} (groups: {known})", node.column)
        members = self.groups[node.name]
        if isinstance(members, str):
            raise BrokenGroup(
                f"group @{node.name} is invalid: {members}", query=self.text, column=node.column
            )
        if not members:
            raise self.error(f"group @{node.name} is empty", node.column)
        try:
            kids = [self.compile(m, mask) for m in members]
        except q.QuerySyntaxError as exc:
            raise self.error(f"in group @{node.name}: {exc.reason}", node.column) from None
        return kids[0] if len(kids) == 1 else Or(kids)

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


def compile_part(text: str, tree: q.SNode, groups: GroupTable, mask: int) -> Node:
    """Compile one query text (part of a rule); the caller checks the whole with `finish`."""
    return Compiler(text, groups).compile(tree, mask)


ALL_NEGATIVE: Final = (
    "the query only excludes (like -basketball alone), so it would match every item; "
    "add a term to look for"
)


def finish(node: Node) -> tuple[Clause, ...]:
    """Whole-query checks; the anchor clauses. ValueError(ALL_NEGATIVE) if it only excludes."""
    if matches_empty(node):
        raise ValueError(ALL_NEGATIVE)
    return best_clauses(node)


def compile_tree(
    text: str, tree: q.SNode, groups: GroupTable, mask: int
) -> tuple[Node, tuple[Clause, ...]]:
    """Compile and validate a whole query (one that must be able to match on its own)."""
    node = compile_part(text, tree, groups, mask)
    try:
        return node, finish(node)
    except ValueError:
        raise q.QuerySyntaxError(ALL_NEGATIVE, query=text, column=1) from None
