"""The text model: how item text and query words become comparable tokens.

Both sides of a match go through the same two steps, so a query word and the text it should
find always normalize alike:

1. **fold**, one character to one character (so offsets in the folded text are offsets in the
   original, which is what snippets need): case folded, NFKC, accents removed (Zürich -> zurich,
   São -> sao, Łódź -> lodz), typographic apostrophes made ASCII. A character whose fold is
   longer (ß -> ss, æ -> ae, ﬁ -> fi) becomes a private-use placeholder that step 2 expands;
   a combining mark becomes \\x03, which step 2 deletes.
2. **tokenize**, one regular-expression pass (`findall`, in C) over the folded text, then a few
   whole-string replacements on the tokens joined with \\x01:
   - a word is letters and digits, with apostrophes inside it (P'yŏngyang, Korea's);
   - a possessive 's is removed and other apostrophes are dropped: korea's -> korea,
     p'yongyang -> pyongyang;
   - hyphens and all other punctuation separate words: Jong-un -> jong, un;
   - a dotted abbreviation is one token without its dots: U.S. -> us, e.g. -> eg;
   - each CJK character (Han, kana, Hangul) is a token of its own, so a CJK query (a phrase of
     such tokens) is found as a substring, with no word segmentation needed.

Positions are token indexes within one field; punctuation and sentence ends are not tokens, so
they neither break a phrase nor count towards a NEAR distance.

The joined form (`\\x01` + tokens joined by `\\x01` + `\\x01`) is what the matcher searches: a
query word "missile" is the substring `\\x01missile\\x01`, a prefix "missile*" is
`\\x01missile`, a phrase is its words joined the same way.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

SEP: Final = "\x01"
"""Separates tokens in the joined form."""

_DROP: Final = "\x03"  # a combining mark in the text: kept for length, deleted from tokens

# CJK scripts written without spaces (and Hangul, whose words carry particles): one token per
# character. Ranges: kana, CJK extension A, unified ideographs, Hangul syllables, compatibility
# ideographs, supplementary ideographs.
_CJK: Final = (
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
_CJK_RE: Final = re.compile(f"[{_CJK}]")
_PUA_FIRST: Final = 0xE000
_PUA_LAST: Final = 0xE0FF
_PUA_CLASS: Final = "\ue000-\ue0ff"

_LETTER: Final = rf"[^\W\d_{_CJK}]"
_W0: Final = rf"(?:[^\W_{_CJK}]|[{_PUA_CLASS}])"
_W: Final = rf"(?:[^\W_{_CJK}]|[{_DROP}{_PUA_CLASS}])"
TOKEN_RE: Final = re.compile(
    rf"[{_CJK}]"  # one CJK character
    rf"|(?:{_LETTER}\.)+{_LETTER}(?!{_W})\.?"  # U.S. / U.S / e.g.
    rf"|{_W0}{_W}*(?:'{_W}+)*"  # a word, apostrophes inside allowed
)
_POSSESSIVE: Final = re.compile(rf"'s(?={SEP}|$)")
_PUA_RE: Final = re.compile(f"[{_PUA_CLASS}]")

_APOSTROPHES: Final = "'\u2019\u2018\u02bc\u02bb\u02b9\u00b4\u2032\uff07"
# Letters that carry no decomposition in Unicode but that a reader treats as accented.
_SPECIAL: Final = {
    "ø": "o", "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ŧ": "t", "ŀ": "l",
    "æ": "ae", "œ": "oe", "þ": "th", "ĸ": "k",
}  # fmt: skip


class _FoldTable(dict[int, str]):
    """str.translate table built lazily: every character maps to exactly one character."""

    def __init__(self) -> None:
        super().__init__()
        self._expansions: dict[str, str] = {}
        self._next = _PUA_FIRST

    def __missing__(self, code: int) -> str:
        out = self._fold_char(chr(code))
        self[code] = out
        return out

    def expansion(self, placeholder: str) -> str:
        return self._expansions.get(placeholder, "")

    def _fold_char(self, c: str) -> str:
        if c in _APOSTROPHES:
            return "'"
        if _PUA_FIRST <= ord(c) <= _PUA_LAST:
            return " "  # our placeholders: never let the input forge one
        if unicodedata.combining(c):
            return _DROP
        if not c.isalnum():
            return c
        if _CJK_RE.match(c):
            return unicodedata.normalize("NFKC", c)[:1] or c  # no NFKD: keep kana voicing
        f = unicodedata.normalize("NFKD", c)
        f = "".join(ch for ch in f if not unicodedata.combining(ch)).casefold()
        f = unicodedata.normalize("NFKC", f)
        f = "".join(_SPECIAL.get(ch, ch) for ch in f)
        if len(f) == 1:
            return f
        if not f:
            return _DROP
        if f.isalnum() and self._next <= _PUA_LAST:
            ph = chr(self._next)
            self._next += 1
            self._expansions[ph] = f
            return ph
        return c.lower()[:1] or c


_FOLD: Final = _FoldTable()


def fold(text: str) -> str:
    """Case-, accent- and width-fold `text` character by character (same length)."""
    if text.isascii():
        return text.lower()
    return text.translate(_FOLD)


def _cleanup(joined: str) -> str:
    if "'" in joined:
        joined = _POSSESSIVE.sub("", joined).replace("'", "")
    if "." in joined:
        joined = joined.replace(".", "")
    if _DROP in joined:
        joined = joined.replace(_DROP, "")
    if not joined.isascii() and _PUA_RE.search(joined):
        joined = _PUA_RE.sub(lambda m: _FOLD.expansion(m.group()), joined)
    return joined


def joined_tokens(folded: str) -> str:
    """The tokens of already-folded text joined by SEP (no leading or trailing SEP)."""
    return _cleanup(SEP.join(TOKEN_RE.findall(folded)))


def tokens(text: str) -> list[str]:
    """Normalized tokens of `text` (used for query words, and in tests)."""
    joined = joined_tokens(fold(text))
    return joined.split(SEP) if joined else []


def token_spans(folded: str) -> list[tuple[int, int]]:
    """(start, end) of each token in the folded text, which are offsets in the original too."""
    return [m.span() for m in TOKEN_RE.finditer(folded)]


def is_cjk(token: str) -> bool:
    return len(token) == 1 and _CJK_RE.match(token) is not None


def label(words: list[str]) -> str:
    """Tokens as a person reads them: spaces between words, none between CJK characters."""
    out = ""
    prev_cjk = False
    for w in words:
        cjk = is_cjk(w)
        if out and not (cjk and prev_cjk):
            out += " "
        out += w
        prev_cjk = cjk
    return out
