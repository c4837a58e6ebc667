"""Query text -> syntax tree, with the column of every part (for error messages).

The grammar is `grammar.lark` (LALR). Its meaning, as SPEC.md gives it, plus the choices the
SPEC leaves open:

- Operators are upper case: `AND`, `OR`, `NOT`, `NEAR/n`. Lower-case and/or/not are words, so
  `"war and peace"` and `Trinidad and Tobago` are phrases. `+` is AND, `|` is OR, a leading `-`
  is NOT.
- Consecutive bare words are one phrase (`North Korea`); a bare word may end in `*`
  (`cruise missile*`: "cruise" then any word starting with "missile").
- Any other two operands side by side are ANDed: `"Xi Jinping" Kim`, `(a OR b) -c`,
  `"A" "B"` all mean AND. (The SPEC's own example, `... (Kim OR Pyongyang) -basketball`, needs
  this.) So `a b OR c` is `(a b) OR c`: implicit AND binds like AND.
- Precedence, tightest first: field scope (`title:`), NOT / `-`, NEAR, AND, OR. A field scope
  applies to the atom after it, and a bare phrase is one atom: `title:North Korea` is the phrase
  "north korea" in the title.
- `A NEAR/n B`: both in the same field with at most n words between them, in either order
  (`NEAR/0`: adjacent). Chains (`a NEAR/5 b NEAR/5 c`) group left to right; the occurrences
  that satisfied the inner NEAR are what the outer one measures from. NEAR takes words,
  phrases, groups and ORs of them, not AND/NOT or regexes.
- `/regex/` is searched in the field's original text, case-insensitively like everything
  else; `/regex/c` is case-sensitive (`/\\bUS\\b/c` finds "US" but not "us"). See regexsafe.py
  for how a pattern is kept from backtracking catastrophically.
- A wildcard needs at least 3 letters before it (`mis*`), so one rule cannot make every word a
  candidate; `*` is allowed only at the end of a word.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from monitor.errors import QueryError


class QuerySyntaxError(QueryError):
    """A QueryError that also keeps the reason without the column, for FILE:LINE:COL lines."""

    def __init__(self, reason: str, *, query: str, column: int) -> None:
        self.reason = reason
        super().__init__(f"column {column}: {reason}", query=query, column=column)


# --- syntax tree --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SWord:
    text: str
    column: int


@dataclass(frozen=True, slots=True)
class SWords:
    """Consecutive bare words: one phrase."""

    words: tuple[SWord, ...]
    column: int


@dataclass(frozen=True, slots=True)
class SQuoted:
    text: str  # without the quotes
    column: int


@dataclass(frozen=True, slots=True)
class SGroup:
    name: str
    column: int


@dataclass(frozen=True, slots=True)
class SRegex:
    pattern: str
    case_sensitive: bool
    column: int  # of the opening slash


@dataclass(frozen=True, slots=True)
class SField:
    field: str
    child: SNode
    column: int


@dataclass(frozen=True, slots=True)
class SNot:
    child: SNode
    column: int


@dataclass(frozen=True, slots=True)
class SAnd:
    children: tuple[SNode, ...]
    column: int


@dataclass(frozen=True, slots=True)
class SOr:
    children: tuple[SNode, ...]
    column: int


@dataclass(frozen=True, slots=True)
class SNear:
    left: SNode
    right: SNode
    distance: int
    column: int  # of the NEAR keyword


SNode = SWords | SQuoted | SGroup | SRegex | SField | SNot | SAnd | SOr | SNear


# --- parsing ------------------------------------------------------------------------------


@cache
def _parser() -> Lark:
    grammar = resources.files("monitor.rules").joinpath("grammar.lark").read_text("utf-8")
    # The basic lexer, not the contextual one: an operator keyword is always an operator, so
    # `a OR OR b` is an error rather than the phrase "or b".
    return Lark(
        grammar,
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=False,
    )


def _col(tok: Token) -> int:
    return tok.column if tok.column is not None else 1


def _first_col(node: SNode | Token) -> int:
    """Column where a node's text starts (a NEAR's own column is its keyword's)."""
    if isinstance(node, Token):
        return _col(node)
    if isinstance(node, SNear):
        return _first_col(node.left)
    return node.column


class _ToSyntax(Transformer[Token, SNode]):
    def words(self, items: list[Token]) -> SWords:
        ws = tuple(SWord(str(t), _col(t)) for t in items)
        return SWords(ws, ws[0].column)

    def quoted(self, items: list[Token]) -> SQuoted:
        (t,) = items
        return SQuoted(str(t)[1:-1], _col(t))

    def group(self, items: list[Token]) -> SGroup:
        (t,) = items
        return SGroup(str(t)[1:], _col(t))

    def regex(self, items: list[Token]) -> SRegex:
        (t,) = items
        text = str(t)
        cs = text.endswith("c") and not text.endswith("/")
        body = text[1:-2] if cs else text[1:-1]
        return SRegex(body.replace("\\/", "/"), cs, _col(t))

    def paren(self, items: list[SNode | Token]) -> SNode:
        node = items[1]
        assert not isinstance(node, Token)
        return node

    def scoped(self, items: list[SNode | Token]) -> SField:
        tok, child = items
        assert isinstance(tok, Token) and not isinstance(child, Token)
        return SField(str(tok)[:-1].lower(), child, _col(tok))

    def not_(self, items: list[SNode | Token]) -> SNot:
        tok, child = items
        assert isinstance(tok, Token) and not isinstance(child, Token)
        return SNot(child, _col(tok))

    def near(self, items: list[SNode | Token]) -> SNear:
        left, tok, right = items
        assert isinstance(tok, Token)
        assert not isinstance(left, Token) and not isinstance(right, Token)
        return SNear(left, right, int(str(tok).split("/", 1)[1]), _col(tok))

    def and_(self, items: list[SNode | Token]) -> SAnd:
        kids = [i for i in items if not isinstance(i, Token)]
        flat: list[SNode] = []
        for k in kids:
            flat.extend(k.children if isinstance(k, SAnd) else (k,))
        return SAnd(tuple(flat), _first_col(flat[0]))

    def or_(self, items: list[SNode | Token]) -> SOr:
        kids = [i for i in items if not isinstance(i, Token)]
        flat: list[SNode] = []
        for k in kids:
            flat.extend(k.children if isinstance(k, SOr) else (k,))
        return SOr(tuple(flat), _first_col(flat[0]))


_OPERATORS = {"OR", "PIPE", "AND", "PLUS", "NOT", "MINUS", "NEAR", "FIELD", "LPAR"}


@lru_cache(maxsize=65536)
def parse(text: str) -> SNode:
    """Parse a query; raise QuerySyntaxError (a QueryError) with a 1-based column.

    Cached: syntax trees are immutable, and a watchlist reload re-reads mostly the same
    queries.
    """
    if not text.strip():
        raise QuerySyntaxError("empty query", query=text, column=1)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        reason, column = _explain(text, exc)
        raise QuerySyntaxError(reason, query=text, column=column) from None
    node = _ToSyntax().transform(tree)
    assert not isinstance(node, Token)
    return node


def _explain(text: str, exc: UnexpectedInput) -> tuple[str, int]:
    column = exc.column if isinstance(exc.column, int) and exc.column > 0 else 1
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        ch = text[pos] if pos < len(text) else ""
        if ch in '"“':
            return "unclosed quote", column
        if ch == "/":
            return "unclosed /regex/ (or a word starting with '/')", column
        if ch == "@":
            return "'@' must be followed by a group name", column
        return f"unexpected character {ch!r}", column
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            open_col = _unclosed_paren(text)
            if open_col:
                return "'(' is never closed", open_col
            prev = _last_token(text)
            if prev is not None and prev.type in _OPERATORS:
                return f"{prev!s} needs a term after it", _col(prev)
            return "query ends too early", len(text.rstrip()) + 1
        if tok.type == "RPAR":
            if tok.start_pos is not None and _unclosed_paren(text[: tok.start_pos]):
                return "a term is missing before ')'", column
            return "')' without a matching '('", column
        if tok.type in _OPERATORS:
            return f"{tok!s} needs a term before it", column
        return f"unexpected {tok!s}", column
    return str(exc).splitlines()[0], column


def _last_token(text: str) -> Token | None:
    last = None
    try:
        for tok in _parser().lex(text, dont_ignore=False):
            last = tok
    except UnexpectedInput:
        return None
    return last


def _unclosed_paren(text: str) -> int:
    stack: list[int] = []
    try:
        for tok in _parser().lex(text):
            if tok.type == "LPAR":
                stack.append(_col(tok))
            elif tok.type == "RPAR" and stack:
                stack.pop()
    except UnexpectedInput:
        return 0
    return stack[-1] if stack else 0
