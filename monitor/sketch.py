"""How two story sketches compare: `same_story`, `similarity` (the sketch itself, what story
identity keeps of an item, is records.Sketch). Pure Python, no numpy: the daemon's story step
(folding.py) needs only this; the workers make the sketches (stories.py: cleaning, folding,
shingles, MinHash, band keys). So the daemon's process never imports numpy or the parse code
to unpickle a worker's reply or to fold (0.1-0.15 s of its first reply, and some 20 MB;
tests/test_layout.py). The parameters were
measured on tests/data/stories/pairs.jsonl by bench/stories.py (docs/design.md, "Stories").
"""

from __future__ import annotations

import difflib
from operator import eq

from monitor.records import Sketch

# --- when two sketches are one story --------------------------------------------------------
BODY_SAME = 0.45  # body Jaccard enough when the titles agree
TITLE_SAME = 0.6  # title word overlap (|A & B| / min(|A|, |B|)) for "the titles agree"
BODY_ALONE = 0.85  # body Jaccard enough with titles that only share a few words
TITLE_FLOOR = 0.25  # below this the titles are of two stories, whatever the bodies share
LEAD_SHINGLES = 30  # the lead: the body's first shingles, in text order
LEAD_SAME = 0.8  # lead containment enough when the titles are nearly the same...
TITLE_LEAD = 0.8
LEAD_ONLY_MAX = 80  # ...and one body is a summary: at most this many shingles


def _jaccard(x: tuple[int, ...], y: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity from two b-bit MinHash signatures (corrected for chance)."""
    n = min(len(x), len(y))
    if n == 0:
        return 0.0
    agree = sum(map(eq, x, y)) / n  # (map stops at the shorter; in C: 5x the generator)
    chance = 1 / 65536
    return max(0.0, (agree - chance) / (1 - chance))


def body_similarity(a: Sketch, b: Sketch) -> float:
    """Estimated Jaccard similarity of the body shingles."""
    return _jaccard(a.sig, b.sig)


def lead_containment(a: Sketch, b: Sketch) -> float:
    """How much of the shorter lead (the first LEAD_SHINGLES shingles of a body) is in the
    other, estimated from their Jaccard similarity J and sizes: |A & B| = J(|A|+|B|)/(1+J)."""
    j = _jaccard(a.lead_sig, b.lead_sig)
    la, lb = min(a.size, LEAD_SHINGLES), min(b.size, LEAD_SHINGLES)
    if not (la and lb):
        return 0.0
    return min(1.0, j * (la + lb) / (1 + j) / min(la, lb))


def title_similarity(a: Sketch, b: Sketch) -> float:
    """Overlap of the title words: |A & B| / min(|A|, |B|), 0 when either has fewer than 2."""
    if min(len(a.title), len(b.title)) < 2:
        return 0.0
    return len(a.title & b.title) / min(len(a.title), len(b.title))


def facts_conflict(a: Sketch, b: Sketch) -> bool:
    """A fact substituted: aligned in order (difflib), the two sequences of facts have a
    stretch where each side has something the other has not there ("two ... Tuesday ...
    Pyongyang" against "three ... Thursday ... Wonsan"). An addition or a removal (a sentence
    added or trimmed, a caption, a credit line) is an insertion or a deletion, not a
    substitution. Anywhere in the first MAX_FACTS facts, not only the lead: two stories under
    one long boilerplate paragraph differ only after it."""
    if not (a.facts and b.facts):
        return False
    matcher = difflib.SequenceMatcher(None, a.facts, b.facts, autojunk=False)
    return any(op == "replace" for op, *_ in matcher.get_opcodes())


def _lead_only(a: Sketch, b: Sketch, title: float) -> bool:
    """One feed carries the lead only: same headline, same opening, one side a summary."""
    return (
        title >= TITLE_LEAD
        and min(a.size, b.size) <= LEAD_ONLY_MAX
        and lead_containment(a, b) >= LEAD_SAME
    )


def same_story(a: Sketch, b: Sketch) -> bool:
    """Precision first: True only when a and b are copies/light rewrites of one report."""
    title = title_similarity(a, b)
    if title < TITLE_FLOOR:  # no rule below accepts it: the signatures are not compared
        return False
    body = body_similarity(a, b)
    by_body = body >= BODY_SAME and (
        title >= TITLE_SAME or (body >= BODY_ALONE and title >= TITLE_FLOOR)
    )
    return (by_body or _lead_only(a, b, title)) and not facts_conflict(a, b)


def similarity(a: Sketch, b: Sketch) -> float:
    """How alike two sketches are, to rank the candidates `same_story` accepts (the best one
    wins): the body's estimated Jaccard similarity, or the lead's containment when the item is
    a summary-only copy."""
    body = body_similarity(a, b)
    if _lead_only(a, b, title_similarity(a, b)):
        return max(body, lead_containment(a, b))
    return body
