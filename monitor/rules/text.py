"""The text model: how item text and query words become comparable tokens.

Both sides of a match go through the same two steps, so a query word and the text it should
find always normalize alike:

1. **fold**, one character to one character (so offsets in the folded text are offsets in the
   original, which is what snippets need): case folded, NFKC, accents removed (Zürich -> zurich,
   São -> sao, Łódź -> lodz), typographic apostrophes made ASCII. A character whose fold is
   longer (ß -> ss, æ -> ae, ﬁ -> fi) becomes a placeholder letter that step 2 expands;
   a combining mark becomes a placeholder letter that step 2 deletes.
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

import functools
import re
import unicodedata
from itertools import accumulate
from typing import Final

SEP: Final = "\x01"
"""Separates tokens in the joined form."""

# A combining mark in the text folds to this letter (kept for length, deleted from tokens).
# U+02B0 is a letter, so it stays inside words, and its own fold is "h", so no input
# character can fold to it.
_DROP: Final = "\u02b0"

# CJK scripts written without spaces (and Hangul, whose words carry particles): one token per
# character. Ranges: kana, CJK extension A, unified ideographs, Hangul syllables, compatibility
# ideographs, supplementary ideographs.
_CJK: Final = (
    "\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
_CJK_RE: Final = re.compile(f"[{_CJK}]")


def _token_re(no: str, *, ascii_only: bool = False) -> re.Pattern[str]:
    """The token pattern; `no` lists characters that are never part of a word (CJK).
    `ascii_only`: the same pattern for ASCII text, with ASCII classes (on ASCII, `[^\\W_]` is
    `[a-zA-Z0-9]`), which the regex engine tests by range rather than by Unicode category:
    a quarter faster on the bench's summaries.

    A word's repeats are possessive (`++`, `*+`): nothing follows them in the pattern, so they
    never give back what they took and the tokens are the same, but the engine keeps no
    backtracking state for each character (findall 8.4 -> 4.5 us on a bench summary)."""
    letter = "[a-zA-Z]" if ascii_only else rf"[^\W\d_{no}]"
    word = "[a-zA-Z0-9]" if ascii_only else rf"[^\W_{no}]"
    return re.compile(
        (rf"[{no}]|" if no else "")
        # U.S. / U.S / e.g. (the lookahead keeps ordinary words off this slower branch)
        + rf"(?={letter}\.{letter})(?:{letter}\.)+{letter}(?!{word})\.?"
        + rf"|{word}++(?:'{word}++)*+"  # a word, apostrophes inside allowed
    )


# Three patterns that agree where each is used: on ASCII text, on text without CJK, on any
# text; each faster than the next. The "grouped" forms capture the token, so that re.split
# returns gaps and tokens alternately.
_TOKEN_ASCII: Final = _token_re("", ascii_only=True)
_TOKEN_PLAIN: Final = _token_re("")
_GROUPED: Final = {p: re.compile(f"({p.pattern})") for p in (_TOKEN_ASCII, _TOKEN_PLAIN)}


@functools.cache
def _token_cjk() -> re.Pattern[str]:
    """The pattern for text with CJK characters (and its grouped form, in _GROUPED), compiled
    when such text first comes: the Han, kana and Hangul ranges make the two 33 ms of
    every start otherwise."""
    p = _token_re(_CJK)
    _GROUPED[p] = re.compile(f"({p.pattern})")
    return p


_POSSESSIVE: Final = re.compile(rf"'s(?={SEP}|$)")
_NON_ASCII: Final = re.compile(r"[^\x00-\x7f]+")

_APOSTROPHES: Final = "'\u2019\u2018\u02bc\u02bb\u02b9\u00b4\u2032\uff07"
# Letters that carry no decomposition in Unicode but that a reader treats as accented.
_SPECIAL: Final = {
    "ø": "o", "ł": "l", "đ": "d", "ð": "d", "ħ": "h", "ı": "i", "ŧ": "t", "ŀ": "l",
    "æ": "ae", "œ": "oe", "þ": "th", "ĸ": "k",
}  # fmt: skip

# Placeholders for characters whose fold is longer than one character (ß -> ss): lower-case
# mathematical letters, which are word characters without case mappings and which no input
# character folds to (their own fold is a plain letter).
_PLACEHOLDERS: Final = [
    c
    for c in map(chr, range(0x1D400, 0x1D800))
    if c.isalnum() and c.islower() and c.lower() == c and c.upper() == c
]
_PLACEHOLDER_RE: Final = re.compile("[\U0001d400-\U0001d7ff]")


class _FoldTable(dict[int, str]):
    """str.translate table built lazily: every character maps to exactly one character."""

    def __init__(self) -> None:
        super().__init__()
        self._expansions: dict[str, str] = {}
        self._free = iter(_PLACEHOLDERS)

    def __missing__(self, code: int) -> str:
        out = self._fold_char(chr(code))
        self[code] = out
        return out

    def expansion(self, placeholder: str) -> str:
        return self._expansions.get(placeholder, "")

    def _fold_char(self, c: str) -> str:
        if c in _APOSTROPHES:
            return "'"
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
        if f.isalnum():
            ph = next(self._free, None)
            if ph is not None:
                self._expansions[ph] = f
                return ph
        return c.lower()[:1] or c


_FOLD: Final = _FoldTable()


def _fold_run(m: re.Match[str]) -> str:
    return m.group().translate(_FOLD)


def fold(text: str) -> str:
    """Case-, accent- and width-fold `text` character by character (same length)."""
    if not text.isascii():
        # Only the non-ASCII runs go through the (slower) per-character table; the folded
        # characters are lower case already, so lower() below leaves them alone.
        text = _NON_ASCII.sub(_fold_run, text)
    return text.lower()


def _pattern(folded: str) -> re.Pattern[str]:
    if folded.isascii():
        return _TOKEN_ASCII
    return _TOKEN_PLAIN if not _CJK_RE.search(folded) else _token_cjk()


def _cleanup(joined: str) -> str:
    if "'" in joined:
        joined = _POSSESSIVE.sub("", joined).replace("'", "")
    if "." in joined:
        joined = joined.replace(".", "")
    if not joined.isascii():
        if _DROP in joined:
            joined = joined.replace(_DROP, "")
        if _PLACEHOLDER_RE.search(joined):
            joined = _PLACEHOLDER_RE.sub(lambda m: _FOLD.expansion(m.group()), joined)
    return joined


def joined_tokens(folded: str) -> str:
    """The tokens of already-folded text joined by SEP (no leading or trailing SEP)."""
    if folded.isascii():
        gaps = folded.translate(_ASCII_GAPS)
        if _plain_words(folded, gaps):
            return _cleanup(SEP.join(gaps.split()))
    return _cleanup(SEP.join(_pattern(folded).findall(folded)))


# ASCII text with everything but letters, digits and apostrophes made a space: split, the
# tokens _TOKEN_ASCII finds, where its other branch (U.S.) cannot match and every apostrophe
# stands inside a word (str.translate and split in C: 3.5 -> 1.8 us a summary).
# Every ASCII character is in the table (mapped to itself if kept): a character missing from
# it is a lookup error raised and caught inside translate, twice the time of the whole split.
_ASCII_GAPS: Final = str.maketrans(
    {chr(c): chr(c) if chr(c).isalnum() or chr(c) == "'" else " " for c in range(128)}
)
_DOT_LETTER: Final = re.compile(r"\.[a-zA-Z]")  # a literal first: a fast scan (0.2 us)


def _plain_words(folded: str, gaps: str) -> bool:
    for m in _DOT_LETTER.finditer(folded):
        if m.start() and folded[m.start() - 1].isalpha():
            return False  # a letter, a dot, a letter: an abbreviation (U.S.) is one token
    return "'" not in gaps or not (
        " '" in gaps or "' " in gaps or "''" in gaps or gaps[0] == "'" or gaps[-1] == "'"
    )


def tokens(text: str) -> list[str]:
    """Normalized tokens of `text` (used for query words, and in tests)."""
    joined = joined_tokens(fold(text))
    return joined.split(SEP) if joined else []


def token_bounds(folded: str) -> list[int]:
    """Character offsets of token boundaries: token i spans [b[2i+1], b[2i+2]).

    One re.split (gaps and tokens alternately) and a running sum, both in C: much cheaper
    than a match object per token. The offsets hold in the original text too (fold keeps
    lengths).
    """
    parts = _GROUPED[_pattern(folded)].split(folded)
    return list(accumulate(map(len, parts), initial=0))


def token_spans(folded: str) -> list[tuple[int, int]]:
    """(start, end) of each token in the folded text, which are offsets in the original too."""
    b = token_bounds(folded)
    return list(zip(b[1::2], b[2::2], strict=False))


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
