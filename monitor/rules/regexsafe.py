"""`/regex/` terms, kept from backtracking catastrophically.

Two layers, because a watchlist is written by people and run on text written by strangers:

1. **Rejected at load**: the shapes that make a backtracking engine exponential or worse: a
   quantified group that itself contains a quantifier (`(a+)+`, `(\\w+\\s?)*`, `(a|b+){2,}`),
   backreferences (`\\1`, `(?P=name)`), and patterns longer than 500 characters. What is left
   is linear-ish in practice; alternations of overlapping branches under a quantifier
   (`(a|a)*`) can still be slow, hence:
2. **Bounded at run time**: with the `regex` package (a dependency) every search has a timeout
   (50 ms); a search that times out counts as "no match", so one bad rule cannot stall the
   matcher, and is counted (`timeouts()`, exported as `monitor_regex_timeouts_total`): a rule
   that may be missing matches is never silent.
"""

from __future__ import annotations

import re
from typing import Any

import regex as _regex

TIMEOUT_S = 0.05
MAX_LEN = 500


class UnsafeRegex(ValueError):
    """The pattern is refused; `offset` is 0-based within the pattern."""

    def __init__(self, message: str, offset: int = 0) -> None:
        self.offset = offset
        super().__init__(message)


def check(pattern: str) -> None:
    """Raise UnsafeRegex for nested quantifiers, backreferences or an overlong pattern."""
    if len(pattern) > MAX_LEN:
        raise UnsafeRegex(f"regex longer than {MAX_LEN} characters", 0)
    # Walk the pattern once, tracking for each open group whether it contains a quantifier.
    stack: list[tuple[int, bool]] = []  # (offset of "(", has quantifier inside)
    has_q = False  # quantifier seen at the current nesting level
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt.isdigit() and nxt != "0":
                raise UnsafeRegex("backreferences are not allowed in /regex/", i)
            if nxt in ("k", "g") and pattern[i + 2 : i + 3] in ("<", "{", "'"):
                raise UnsafeRegex("backreferences are not allowed in /regex/", i)
            i += 2
            continue
        if c == "[":
            i = _skip_class(pattern, i)
            continue
        if c == "(":
            if pattern.startswith("(?P=", i):
                raise UnsafeRegex("backreferences are not allowed in /regex/", i)
            stack.append((i, has_q))
            has_q = False
            i += 1
            continue
        if c == ")":
            inner_q = has_q
            start, outer_q = stack.pop() if stack else (i, False)
            i += 1
            q_end = _quantifier_end(pattern, i)
            if q_end and _unbounded_or_many(pattern[i:q_end]) and inner_q:
                raise UnsafeRegex(
                    "nested quantifiers (a repeated group that repeats inside, like (a+)+) "
                    "can take exponential time; rewrite the pattern",
                    start,
                )
            has_q = outer_q or inner_q or bool(q_end)
            if q_end:
                i = q_end
            continue
        q_end = _quantifier_end(pattern, i)
        if q_end and _unbounded_or_many(pattern[i:q_end]):
            has_q = True
            i = q_end
            continue
        i += 1


def _skip_class(p: str, i: int) -> int:
    j = i + 1
    if j < len(p) and p[j] == "^":
        j += 1
    if j < len(p) and p[j] == "]":
        j += 1
    while j < len(p) and p[j] != "]":
        j += 2 if p[j] == "\\" else 1
    return j + 1


_BRACES = re.compile(r"\{(\d*)(?:,(\d*))?\}")


def _quantifier_end(p: str, i: int) -> int:
    """End offset of a quantifier starting at i (with its lazy/possessive suffix), else 0."""
    if i >= len(p):
        return 0
    if p[i] in "*+?":
        j = i + 1
    else:
        m = _BRACES.match(p, i)
        if not m or m.group() == "{}":
            return 0
        j = m.end()
    if j < len(p) and p[j] in "?+":
        j += 1
    return j


def _unbounded_or_many(q: str) -> bool:
    """True for quantifiers that repeat more than once: * + {2,} {1,5}; not ? or {1}."""
    if q[0] in "*+":
        return True
    if q[0] == "?":
        return False
    m = _BRACES.match(q)
    if not m:
        return False
    lo, hi = m.group(1), m.group(2)
    if m.group().find(",") < 0:
        return int(lo or 0) > 1
    return hi == "" or int(hi) > 1


_timeouts = [0]  # searches cut off by the timeout, in this process (a list: one shared cell)


def timeouts() -> int:
    """How many regex searches were cut off by the timeout in this process."""
    return _timeouts[0]


class RegexTerm:
    """A compiled, checked pattern; `search(text)` returns a match span or None."""

    def __init__(self, pattern: str, case_sensitive: bool) -> None:
        check(pattern)
        self.pattern = pattern
        self.case_sensitive = case_sensitive
        flags = _regex.V0 | (0 if case_sensitive else _regex.IGNORECASE | _regex.FULLCASE)
        try:
            self._re: Any = _regex.compile(pattern, flags)
        except _regex.error as exc:
            raise UnsafeRegex(f"invalid regex: {exc.msg}", exc.pos or 0) from None

    def finditer(self, text: str, limit: int = 20) -> list[tuple[int, int]]:
        """Up to `limit` non-empty match spans."""
        out: list[tuple[int, int]] = []
        try:
            for m in self._re.finditer(text, timeout=TIMEOUT_S):
                if m.end() > m.start():
                    out.append(m.span())
                    if len(out) >= limit:
                        break
        except TimeoutError:
            _timeouts[0] += 1
            return []
        return out

    def search(self, text: str) -> bool:
        try:
            m = self._re.search(text, timeout=TIMEOUT_S)
        except TimeoutError:
            _timeouts[0] += 1
            return False
        return m is not None and m.end() > m.start()
