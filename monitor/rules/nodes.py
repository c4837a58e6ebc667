"""The executable form of a query: node classes, and the item as they see it.

A compiled query is a small tree of nodes, each able to say whether it holds for one item
(`test`), where it holds (`occ`, for words, phrases and NEAR: occurrences as
(field, first token, end token)), and why (`explain`, evidence for terms and snippet). Nodes
never look at raw text except `Regex`: words and phrases read which search keys the matcher's
scanner found in each field (`ItemContext.keys_by_field`) and, for positions, the joined form
of the field (see text.py). Each distinct search key gets a small int id (`intern_key`),
shared by all queries in the process:

    missile        -> "\\x01missile\\x01"          exact word
    missile*       -> "\\x01missile"               prefix
    North Korea    -> "\\x01north\\x01korea\\x01"   phrase, found in one pass like a word
    nucl* weapon   -> "\\x01nucl" + check "weapon" on the next token (a prefix inside a phrase)

Imports run one way: text, query, regexsafe -> nodes -> matcher -> compiler -> watchlist.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from itertools import accumulate, count
from operator import add
from typing import Final

from monitor.records import ItemData
from monitor.rules.regexsafe import RegexTerm
from monitor.rules.text import SEP, fold, joined_tokens, label, token_bounds

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
Clause = frozenset[str]  # search keys of which at least one occurs whenever a query matches
# Evidence: (field, start, end, is_char_span, label or ""): token spans get labels later.
Evidence = tuple[int, int, int, bool, str]


_KEY_IDS: dict[str, int] = {}


def intern_key(key: str) -> int:
    """A small int per distinct search key, shared by every compiled query in the process
    (so a leaf's id means the same to every matcher, and hit tables are keyed by ints)."""
    found = _KEY_IDS.get(key)
    if found is None:
        found = _KEY_IDS.setdefault(key, len(_KEY_IDS))
    return found


def _field_text(item: ItemData, index: int) -> str:
    name = FIELDS[index]
    if name == "category":
        return "\n".join(item.categories)
    if name == "feed":
        return item.feed_id
    value = getattr(item, name)
    return value or ""


class ItemContext:
    """One item as the nodes see it: folded fields, the hit table, lazy tokens and spans.

    The scanner leaves, per field, `keys_by_field[f]`: the ids of the keys found in `wrapped[f]`
    (built in C). Most questions ("does key k occur in the title or summary?") are set lookups
    on those. Where a key occurs (for NEAR, phrases with a wildcard inside, explanations) is
    found again with str.find in the fields the set names; token indexes, tokens and character
    spans are computed on demand, for the items that need them.
    """

    __slots__ = (
        "_bounds",
        "_cum",
        "_labels",
        "_tokens",
        "ascii",
        "explained",
        "folded",
        "keys_by_field",
        "keys_by_mask",
        "occ_cache",
        "present_fields",
        "raw",
        "wrapped",
    )

    def __init__(self, item: ItemData, fields: Sequence[int]) -> None:
        n = len(FIELDS)
        self.raw: list[str] = [""] * n
        self.folded: list[str] = [""] * n
        self.wrapped: list[str] = [""] * n
        self.ascii: list[bool] = [True] * n
        self.present_fields: list[int] = []
        self.keys_by_field: dict[int, AbstractSet[int]] = {}
        self.keys_by_mask: dict[int, AbstractSet[int]] = {}  # field mask -> key ids found
        self._tokens: dict[int, list[str]] = {}
        self._bounds: dict[int, list[int]] = {}
        self._cum: dict[int, list[int]] = {}
        self._labels: dict[tuple[int, int, int], str] = {}
        self.occ_cache: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
        self.explained: dict[tuple[Evidence, ...], tuple[tuple[str, ...], str]] = {}
        for f in fields:
            raw = _field_text(item, f)
            if not raw:
                continue
            self.raw[f] = raw
            folded = fold(raw)
            self.folded[f] = folded
            self.ascii[f] = folded.isascii()
            # SEP tok SEP tok SEP: every token, first and last included, is between SEPs.
            self.wrapped[f] = SEP + joined_tokens(folded) + SEP
            self.present_fields.append(f)

    def keys_in(self, mask: int) -> AbstractSet[int]:
        """Ids of the keys that occur in at least one of the fields of `mask`."""
        found = self.keys_by_mask.get(mask)
        if found is None:
            sets = [s for f, s in self.keys_by_field.items() if mask >> f & 1]
            found = self.keys_by_mask[mask] = (
                sets[0] if len(sets) == 1 else set().union(*sets) if sets else frozenset()
            )
        return found

    def tokens(self, field: int) -> list[str]:
        toks = self._tokens.get(field)
        if toks is None:
            w = self.wrapped[field]
            toks = self._tokens[field] = w[1:-1].split(SEP) if len(w) > 2 else []
        return toks

    def token_at(self, field: int, offset: int) -> int:
        """Index of the token whose leading SEP is at `offset` in wrapped[field]."""
        cum = self._cum.get(field)
        if cum is None:
            # offset of token i's SEP = sum of (len + 1) over the tokens before it
            # (sum of the lengths before token i) + i, computed in C
            lengths = accumulate(map(len, self.tokens(field)), initial=0)
            cum = self._cum[field] = list(map(add, lengths, count()))
        return bisect_left(cum, offset)

    def span(self, field: int, start: int, end: int) -> tuple[int, int]:
        """Character span of tokens [start, end) of a field."""
        b = self._bounds.get(field)
        if b is None:
            b = self._bounds[field] = token_bounds(self.folded[field])
        return b[2 * start + 1], b[2 * end]

    def label(self, field: int, start: int, end: int) -> str:
        key = (field, start, end)
        lab = self._labels.get(key)
        if lab is None:
            words = self.tokens(field)[start:end]
            lab = " ".join(words) if self.ascii[field] else label(words)
            self._labels[key] = lab
        return lab


# --- nodes --------------------------------------------------------------------------------


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


class Leaf(Node):
    """A word, prefix or phrase, in the fields of `mask`."""

    __slots__ = ("key", "key_id", "mask", "n", "rest", "words")

    def __init__(self, words: tuple[tuple[str, bool], ...], mask: int) -> None:
        self.words = words
        self.mask = mask
        self.n = len(words)
        self.key, self.rest = search_key(words)
        self.key_id = intern_key(self.key)

    def positional(self) -> bool:
        return True

    def test(self, ctx: ItemContext) -> bool:
        # The hit table knows in which fields each key occurs: most leaves need nothing else.
        found = ctx.keys_by_mask.get(self.mask)
        if found is None:
            found = ctx.keys_in(self.mask)
        if self.key_id not in found:
            return False
        return not self.rest or bool(self.occ(ctx))

    def occ(self, ctx: ItemContext) -> list[Occ]:
        cache_key = (self.key_id, self.mask)
        cached = ctx.occ_cache.get(cache_key)  # many rules share a term: compute it once
        if cached is None:
            cached = ctx.occ_cache[cache_key] = self._occ(ctx)
        return cached

    def _occ(self, ctx: ItemContext) -> list[Occ]:
        out: list[Occ] = []
        key, key_id, n = self.key, self.key_id, self.n
        for f, found in ctx.keys_by_field.items():
            if not (self.mask >> f & 1 and key_id in found):
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
    __slots__ = ("operands",)

    def __init__(self, operands: Sequence[Node]) -> None:
        # Negations last: they are only worth testing once the positive part holds.
        self.operands = tuple(sorted(operands, key=lambda k: isinstance(k, Not)))

    def test(self, ctx: ItemContext) -> bool:
        for k in self.operands:  # noqa: SIM110 - a plain loop is faster than all() on the hot path
            if not k.test(ctx):
                return False
        return True

    def explain(self, ctx: ItemContext, out: list[Evidence]) -> None:
        for k in self.operands:
            k.explain(ctx, out)

    def children(self) -> Sequence[Node]:
        return self.operands


class Or(Node):
    __slots__ = ("leaf_ids", "leaf_mask", "operands")

    def __init__(self, operands: Sequence[Node]) -> None:
        self.operands = tuple(operands)
        # An OR of plain words and phrases in the same fields (a group, typically) is tested
        # with one set operation on the hit table.
        self.leaf_ids: frozenset[int] | None = None
        self.leaf_mask = 0
        masks = {k.mask for k in self.operands if isinstance(k, Leaf)}
        if len(masks) == 1 and all(isinstance(k, Leaf) and not k.rest for k in self.operands):
            self.leaf_ids = frozenset(k.key_id for k in self.operands if isinstance(k, Leaf))
            self.leaf_mask = masks.pop()

    def test(self, ctx: ItemContext) -> bool:
        if self.leaf_ids is not None:
            return not ctx.keys_in(self.leaf_mask).isdisjoint(self.leaf_ids)
        for k in self.operands:  # noqa: SIM110 - as in And.test
            if k.test(ctx):
                return True
        return False

    def positional(self) -> bool:
        return all(k.positional() for k in self.operands)

    def occ(self, ctx: ItemContext) -> list[Occ]:
        out: list[Occ] = []
        for k in self.operands:
            out.extend(k.occ(ctx))
        return out

    def explain(self, ctx: ItemContext, out: list[Evidence]) -> None:
        for k in self.operands:
            if k.test(ctx):
                k.explain(ctx, out)

    def children(self) -> Sequence[Node]:
        return self.operands


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
        return all(matches_empty(k) for k in node.operands)
    if isinstance(node, Or):
        return any(matches_empty(k) for k in node.operands)
    return False
