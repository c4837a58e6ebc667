"""Story identity: is this item a copy or a light rewrite of one already seen? (pure, no I/O)

`sketch(title, text)` turns an item into a `Sketch`: LSH band keys, which the store indexes
to find candidates, and a compact signature, which `same_story` compares. This module makes
sketches (numpy; in the parse workers); the Sketch type is records.py's and the comparisons
are sketch.py's, without numpy, for the daemon's story step. The design, the
parameters and the measurements that chose them are in docs/design.md, "Stories".

1. Cleaning. Wire markup (`[USN:… TEXT:"…"]`), credit lines ("Reporting by …; Editing by …",
   "Source: Reuters"), datelines ("SEOUL, May 9 (Yonhap) --", "(Reuters) -", "CAIRO:"),
   timestamp lines, photo captions ("… via REUTERS", "(File photo: AFP)"), site boilerplate
   ("Join the mailing list", "The post … appeared first on …", "Click here to …", "Sign up
   for …") and lines of fewer than MIN_LINE_WORDS words (menus, widgets) are removed before
   anything is hashed: they are shared by different stories of one publisher and differ
   between copies of one story.
   Headline suffixes (" | World", " - Seoul", " - BBC News") and prefixes ("UPDATE 2-",
   "WATCH:") are cut from the title.
2. Folding. Case and accents folded, "U.S." = "US", months and numbers in one spelling
   ("February" = "Feb", "2.00" = "2", "1,800" = "1800", "two" = "2").
3. Body: word 3-shingles of the first `MAX_TOKENS` tokens, hashed once per token with
   blake2b (keyed, so never Python's randomised `hash()`), combined and mixed with
   splitmix64, then MinHash with `PERMS` multiply-shift permutations in numpy. The signature
   keeps the low 16 bits of each value (b-bit MinHash); the band keys use all 32.
4. Title: the set of folded title words (blake2b, 32 bits), compared by overlap.
5. Facts: the numbers, number words, weekdays, months and names (capitalised words that do
   not start a sentence) of the title and the body, in order. Aligned, a fact that only one
   side has is an addition; a stretch where each side has its own is a substitution ("two
   missiles on Tuesday from Pyongyang" against "three missiles on Thursday from Wonsan"):
   another report, whatever the text similarity says.
6. Lead: a second, short MinHash of the body's first LEAD_SHINGLES shingles, so that a feed
   that carries only a story's summary still meets the feed that carries it whole.

`same_story` is precision first: similar bodies *and* similar titles (or near-identical
bodies and titles that share a few words), or near-identical titles and one body the other's
lead; and never a substituted fact.
"""

from __future__ import annotations

import functools
import hashlib
import re

import numpy as np

from monitor.normalize import strip_accents
from monitor.records import ItemData, Sketch
from monitor.sketch import LEAD_SHINGLES

# --- parameters (measured on tests/data/stories/pairs.jsonl by bench/stories.py) ------------
SHINGLE = 3  # words per shingle
PERMS = 128  # MinHash permutations
BANDS = 42  # LSH bands of ROWS values each (126 of the 128 values): candidate threshold
ROWS = PERMS // BANDS  # ~ (1/BANDS) ** (1/ROWS) = 0.29
MAX_TOKENS = 600  # body words hashed: the lead and more; the tail of a long story adds nothing
MIN_LINE_WORDS = 4  # shorter lines of the body are dropped
MIN_TOKENS = 12  # fewer body words than this: too little text to judge, sketch() is None
MAX_FACTS = 96  # facts kept (16-bit hashes), from the start
MAX_TITLE_WORDS = 32

LEAD_PERMS = 32  # MinHash permutations of the lead (the first 32 of the body's)
LEAD_BANDS = 8  # LSH bands of the lead, "L0:" to "L7:"
_KEY = b"monitor.stories.v1"


def _u64(label: str) -> int:
    return int.from_bytes(
        hashlib.blake2b(label.encode(), digest_size=8, key=_KEY).digest(), "little"
    )


# multiply-shift permutations: odd multipliers, any offsets, derived from blake2b so that they
# are the same in every process and every numpy version
_MAX_PERMS = 256  # bench/stories.py tries other numbers of permutations
_A = np.array([_u64(f"a{i}") | 1 for i in range(_MAX_PERMS)], dtype=np.uint64)
_B = np.array([_u64(f"b{i}") for i in range(_MAX_PERMS)], dtype=np.uint64)
_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


# --- cleaning ------------------------------------------------------------------------------
_WIRE_MARKUP = re.compile(r'\[USN:\S+ TEXT:"(.*?)"\]')
_CREDIT = re.compile(  # at the line's start, after a sentence, or in brackets; to the end
    r"(?:^|(?<=[.!?\"”])\s+|\s*[(\[])(?:additional |)(?:reporting|writing|editing|edited|"
    r"translated|compiled) by\b[^\n]{0,300}$",
    re.I,
)
_DATELINE = re.compile(
    r"^(?:[A-Z][A-Za-z.'/-]*(?:[ /][A-Z][A-Za-z.'-]*){0,3}"  # SEOUL, CAIRO/WASHINGTON, NEW YORK
    r"(?:,\s*[A-Z][a-z]{2,8}\.?\s+\d{1,2}(?:,\s*\d{4})?)?"  # , May 9
    r"\s*)?"
    r"(?:\((?:Reuters|AP|AFP|Yonhap|UPI|Xinhua|dpa|Bloomberg|IANS|PTI|KCNA|\w{2,10})\)\s*)?"
    r"(?:--|-|–|—|:)\s+"
)
_LINE_BOILERPLATE = re.compile(
    r"(?:"
    r"source:\s*\S.{0,40}|"
    r"(?:join|sign up for|subscribe to) (?:the|our) (?:mailing list|newsletters?)\b.{0,120}|"
    r"(?:sign up|subscribe)\b.{0,120}|"
    r"(?:click|tap) here\b.{0,160}|"
    r"the post .{1,300} appeared first on .{1,120}|"
    r"(?:continue|keep) reading\b.{0,60}|"
    r"read (?:more|the full (?:story|article)|a summary)\b.{0,80}|"
    r"(?:follow|like) us on\b.{0,80}|"
    r"(?:related|related topics|also worth reading|see also|also read|read also|more):?|"
    r"(?:copyright\s*)?(?:©|\(c\)|copyright)\s.{0,120}|all rights reserved\W*|"
    r"(?:advertisement|sponsored|show (?:more|less)|content is loading\W*|"
    r"expand to read the full story|download here|join here|subscribe here)|"
    r"(?:get|add|set) [\w ]{1,30} (?:app|alerts|as (?:a|your) .{0,80}).{0,120}|"
    r"\d{1,2} \w{3,9} \d{4} \d{1,2}[:.]\d{2}\s*(?:am|pm)?(?: \(updated: .{5,40}\))?|"
    r"(?:updated|published|posted|last updated):? .{0,60}|"
    # photo captions: they differ between copies of one story, and carry names and dates
    r".{0,300}(?:\bvia reuters|\breuters/[\w ]{2,40}|\bap photo(?:/[\w .]{2,40})?|getty images|"
    r"\((?:file )?photo:[^)]{1,60}\)|(?<=\. )afp|\bafp photo|\bafp/[\w .]{2,40})\W*|"
    r"(?:photo|image|file photo):.{0,200}"
    r")",
    re.I,
)
_BOILERPLATE_MAX = 420  # longer lines are story text: the patterns are not even tried
_TITLE_SUFFIX = re.compile(r"\s+(?:\||-|–|—|::)\s+[^|\-–—]{1,40}$")
_TITLE_PREFIX = re.compile(
    r"^(?:(?:update|corrected|refile|exclusive|breaking|watch|live|video|analysis|explainer)"
    r"(?:\s*\d+)?\s*[-:–—]\s*)+",
    re.I,
)

# --- folding -------------------------------------------------------------------------------
_ABBREV = re.compile(r"\b(?:[A-Za-z]\.){2,}")
_SENTENCE_BREAK = re.compile(r"[.!?:;\"“”\n(]")
_TOKEN = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_]+")
_SEP_TOKEN = re.compile(r"(\W*)(\d+(?:[.,:]\d+)*|[^\W\d_]+)")


def _words(text: str) -> list[str]:
    return text.split()


_MONTHS = {
    "january": "jan", "february": "feb", "march": "mar", "april": "apr", "june": "jun",
    "july": "jul", "august": "aug", "september": "sep", "sept": "sep", "october": "oct",
    "november": "nov", "december": "dec",
}  # fmt: skip
_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        _words(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
            "fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
} | {"first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th"}
_FACT_WORDS = frozenset(
    _words(
        "monday tuesday wednesday thursday friday saturday sunday yesterday today tomorrow "
        "jan feb mar apr may jun jul aug sep oct nov dec"
    )
)
_NOT_NAMES = frozenset(_words("i the a an it he she they we this that president minister"))
_TITLE_STOP = frozenset(
    _words("a an the of in on at to for and or by with from as is are its says")
)


@functools.lru_cache(maxsize=100_000)
def _norm(tok: str) -> str:
    if tok[0].isdigit():
        tok = tok.replace(",", "")
        for zeros in (".00", ":00", ".0"):
            if tok.endswith(zeros):
                return tok[: -len(zeros)]
        return tok
    tok = tok.casefold()
    return _MONTHS.get(tok, tok)


def _fold(text: str) -> list[str]:
    """Folded tokens: words and numbers, case and accents folded, one spelling of each."""
    text = _ABBREV.sub(lambda m: m.group(0).replace(".", ""), strip_accents(text))
    return [_norm(tok) for tok in _TOKEN.findall(text)]


def _fold_names(text: str) -> tuple[list[str], list[bool]]:
    """`_fold`, and for each token whether it is a name: capitalised, not a sentence's first."""
    text = _ABBREV.sub(lambda m: m.group(0).replace(".", ""), strip_accents(text))
    pairs = _SEP_TOKEN.findall(text)
    tokens = [_norm(tok) for _, tok in pairs]
    names = [
        i > 0
        and tok[0].isupper()
        and len(tok) > 1
        and (sep == " " or not _SENTENCE_BREAK.search(sep))
        for i, (sep, tok) in enumerate(pairs)
    ]
    return tokens, names


def clean_title(title: str) -> str:
    """The headline without a site or section suffix and without a wire prefix."""
    title = _TITLE_PREFIX.sub("", title.strip())
    while (cut := _TITLE_SUFFIX.sub("", title)) != title and len(cut.split()) >= 4:
        title = cut
    return title


def clean_body(text: str) -> str:
    """The body without wire markup, credit lines, datelines and site boilerplate."""
    text = _WIRE_MARKUP.sub(r"\1", text)
    kept = []
    for raw in text.split("\n"):
        line = raw.strip()
        if line.count(" ") < MIN_LINE_WORDS - 1:
            continue  # a short line is a label, a menu, a widget, not story text
        if len(line) <= _BOILERPLATE_MAX and _LINE_BOILERPLATE.fullmatch(line):
            continue
        if line[0].isupper() or line[0] == "(":
            line = _DATELINE.sub("", line, count=1)
        if " by " in line or " By " in line:
            line = _CREDIT.sub("", line).strip()
        if line:
            kept.append(line)
    return "\n".join(kept)


def _fact(tok: str, name: bool = False) -> str | None:
    if tok[0].isdigit():
        return tok
    if tok in _FACT_WORDS:
        return tok if tok != "may" or name else None  # "may" the verb is no month
    if name and tok not in _NOT_NAMES:
        return tok
    return _NUMBER_WORDS.get(tok)


# --- hashing -------------------------------------------------------------------------------
_TOKEN_CACHE: dict[str, int] = {}
_CACHE_MAX = 200_000


def _token_hash(tok: str) -> int:
    h = _TOKEN_CACHE.get(tok)
    if h is None:
        if len(_TOKEN_CACHE) >= _CACHE_MAX:
            _TOKEN_CACHE.clear()
        h = int.from_bytes(
            hashlib.blake2b(tok.encode(), digest_size=8, key=_KEY).digest(), "little"
        )
        _TOKEN_CACHE[tok] = h
    return h


def _h32(tok: str) -> int:
    return _token_hash(tok) >> 32


def shingle_hashes(tokens: list[str], k: int = SHINGLE) -> np.ndarray:
    """The 64-bit hashes of the k-word shingles of `tokens`, in text order."""
    t = np.fromiter((_token_hash(w) for w in tokens), dtype=np.uint64, count=len(tokens))
    if len(t) < k:
        return t[:0]
    with np.errstate(over="ignore"):
        s = t[: len(t) - k + 1].copy()
        for i in range(1, k):
            s = s * _K1 + t[i : len(t) - k + 1 + i] * _K2
        s ^= s >> np.uint64(30)  # splitmix64 finaliser: every input bit reaches the top bits
        s *= _M1
        s ^= s >> np.uint64(27)
        s *= _M2
        s ^= s >> np.uint64(31)
    return s


def minhash(shingles: np.ndarray, perms: int = PERMS) -> np.ndarray:
    """MinHash signature (uint32) of shingle hashes: multiply-shift, the top 32 bits."""
    a, b = _A[:perms], _B[:perms]
    with np.errstate(over="ignore"):
        values = (shingles[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)
    return values.min(axis=0).astype(np.uint32)


def band_keys(sig: np.ndarray, bands: int = BANDS, prefix: str = "") -> tuple[str, ...]:
    """LSH band keys of a signature: "07:" (the band) + 48 bits of blake2b of its values.
    The band's index is in the key, so equal values at two positions are two keys; the lead's
    bands are "L0:" to "L7:"."""
    rows = len(sig) // bands
    values = sig.astype("<u4")
    width = 1 if prefix else 2
    return tuple(
        f"{prefix}{i:0{width}d}:"
        + hashlib.blake2b(values[i * rows : (i + 1) * rows].tobytes(), digest_size=6).hexdigest()
        for i in range(bands)
    )


def body_tokens(text: str) -> tuple[list[str], list[bool]]:
    """The folded tokens of the cleaned body (at most MAX_TOKENS) and which are names."""
    # MAX_TOKENS words are rarely more than 12 characters each: fold no more than that
    body, names = _fold_names(clean_body(text[: MAX_TOKENS * 12]))
    return body[:MAX_TOKENS], names[:MAX_TOKENS]


def sketch(title: str, text: str) -> Sketch | None:
    """None when there is too little text to judge (then only exact identity applies)."""
    return sketch_with(title, text)


def sketch_with(
    title: str, text: str, shingle: int = SHINGLE, perms: int = PERMS, bands: int = BANDS
) -> Sketch | None:
    """`sketch` with other parameters (bench/stories.py measures them)."""
    body, names = body_tokens(text)
    if len(body) < MIN_TOKENS:
        return None
    ordered = shingle_hashes(body, shingle)
    shingles = np.unique(ordered)
    sig = minhash(shingles, perms)
    lead = minhash(ordered[:LEAD_SHINGLES], LEAD_PERMS)
    keys = band_keys(sig, bands) + band_keys(lead, LEAD_BANDS, "L") + title_key(title)
    return assemble(title, body, names, keys, sig, len(shingles), lead)


def title_key(title: str) -> tuple[str, ...]:
    """ "T:" + 48 bits of the sorted folded title words: a candidate whatever the bodies (a
    summary-only feed); none for a title of fewer than 3 words (too common to look up)."""
    words = sorted(set(_fold(clean_title(title))) - _TITLE_STOP)
    if len(words) < 3:
        return ()
    return ("T:" + hashlib.blake2b(" ".join(words).encode(), digest_size=6).hexdigest(),)


def assemble(
    title: str, body: list[str], names: list[bool], bands: tuple[str, ...], sig: np.ndarray,
    size: int, lead_sig: np.ndarray | None = None,
) -> Sketch:  # fmt: skip
    """The sketch of an item from its body's signature and band keys, however made."""
    head = _fold(clean_title(title))
    facts = [f for tok in head if (f := _fact(tok))]
    facts += [f for tok, nm in zip(body, names, strict=True) if (f := _fact(tok, nm))]
    return Sketch(
        bands=bands,
        sig=tuple((sig & 0xFFFF).tolist()),
        lead_sig=() if lead_sig is None else tuple((lead_sig & 0xFFFF).tolist()),
        size=size,
        title=frozenset(_h32(w) for w in head[:MAX_TITLE_WORDS] if w not in _TITLE_STOP),
        facts=tuple(_h32("#" + f) & 0xFFFF for f in facts[:MAX_FACTS]),
    )


def item_sketch(item: ItemData) -> Sketch | None:
    """The story step's sketch of a stored item: its title and its text (folding.py)."""
    return sketch(item.title, f"{item.summary}\n{item.content}")
