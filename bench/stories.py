"""Story identity: precision, recall and speed of monitor.stories, and of the alternatives.

    .venv/bin/python bench/stories.py [N]      # N timing passes (default 3, best kept)

On the labelled set (tests/data/stories/pairs.jsonl) a pair is judged the way the store will
judge it: a candidate only if the two items share an LSH band key, then `same_story`. Prints
precision, recall and the number of pairs for the chosen scheme; the threshold sweep that chose
BODY_SAME; items/s of `sketch()` on the corpus items (title + summary + content, as the
pipeline gives them) and `same_story()` calls/s; then, measured in the same run and with the
same guards (titles, facts), the rejected alternatives: other shingle sizes, other band shapes,
datasketch's MinHash and MinHashLSH, and a 64-bit SimHash. Rates depend on the machine; on these
shared machines compare the ratios.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor import sketch as compare  # noqa: E402
from monitor import stories  # noqa: E402
from monitor.parse import parse_feed  # noqa: E402
from monitor.records import Sketch  # noqa: E402

PAIRS = ROOT / "tests" / "data" / "stories" / "pairs.jsonl"
CORPUS = ROOT / "tests" / "data" / "corpus"
FETCHED_AT = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)

Sketcher = Callable[[str, str], Sketch | None]
VARIANTS = ((128, 16), (128, 32), (128, 64), (64, 16), (256, 64))  # (perms, body bands)
Judge = Callable[[Sketch, Sketch], bool]


def corpus_items() -> list[tuple[str, str]]:
    out = []
    for path in sorted(CORPUS.glob("*.xml")):
        try:
            feed = parse_feed(path.read_bytes(), feed_id="b", base_url=None, fetched_at=FETCHED_AT)
        except Exception:
            continue
        out += [(i.title, "\n".join(t for t in (i.summary, i.content) if t)) for i in feed.items]
    return out


def rates(fns: dict[str, Sketcher], items: list[tuple[str, str]], passes: int) -> dict[str, float]:
    """items/s of each sketcher, timed in turn within each pass (best pass kept), so that a
    busy moment of a shared machine does not fall on one of them only."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn(*items[0])
    for _ in range(passes):
        for name, fn in fns.items():
            started = time.perf_counter()
            for title, text in items:
                fn(title, text)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: len(items) / t for name, t in best.items()}


def score(
    pairs: list[dict], sketcher: Sketcher, judge: Judge, candidates: Judge | None = None
) -> tuple[float, float, float]:
    """(precision, recall, candidate recall): candidate recall is the share of same-story
    pairs that share a band key, the most the candidate stage lets through."""
    share = candidates or (lambda a, b: bool(set(a.bands) & set(b.bands)))
    tp = fp = fn = cand = 0
    for p in pairs:
        a = sketcher(p["a"]["title"], p["a"]["text"])
        b = sketcher(p["b"]["title"], p["b"]["text"])
        is_candidate = a is not None and b is not None and share(a, b)
        got = is_candidate and judge(a, b)  # type: ignore[arg-type]
        cand += bool(p["same"] and is_candidate)
        tp += got and p["same"]
        fp += got and not p["same"]
        fn += not got and p["same"]
    same = tp + fn
    return (tp / (tp + fp) if tp + fp else 1.0), tp / same, cand / same


def candidates_per_item(sketches: Iterable[Sketch | None]) -> float:
    """Other corpus items an item shares a band key with, on average: the lookups' fan-out
    (the corpus has one real copy, so nearly all of these are false candidates)."""
    index: dict[str, set[int]] = {}
    kept = [s for s in sketches if s is not None]
    for n, s in enumerate(kept):
        for key in s.bands:
            index.setdefault(key, set()).add(n)
    total = 0
    for n, s in enumerate(kept):
        total += len(set().union(*(index[k] for k in s.bands)) - {n})
    return total / len(kept)


# --- alternatives ------------------------------------------------------------------------------
def datasketch_sketcher(perms: int = 128, threshold: float = 0.5) -> tuple[Sketcher, str]:
    from datasketch import MinHash
    from datasketch.lsh import _optimal_param

    b, r = _optimal_param(threshold, perms, 0.5, 0.5)

    def make(title: str, text: str) -> Sketch | None:
        body, names = stories.body_tokens(text)
        if len(body) < stories.MIN_TOKENS:
            return None
        grams = {" ".join(body[i : i + 3]).encode() for i in range(len(body) - 2)}
        m = MinHash(num_perm=perms)
        m.update_batch(list(grams))
        sig = m.hashvalues.astype(np.uint32)
        lead = MinHash(num_perm=stories.LEAD_PERMS)
        lead.update_batch(
            [
                " ".join(body[i : i + 3]).encode()
                for i in range(min(stories.LEAD_SHINGLES, len(body) - 2))
            ]
        )
        lead_sig = lead.hashvalues.astype(np.uint32)
        keys = stories.band_keys(sig[: b * r], b) + stories.band_keys(lead_sig, 8, "L")
        return stories.assemble(title, body, names, keys + stories.title_key(title), sig,
                                len(grams), lead_sig)  # fmt: skip

    return make, f"datasketch MinHash({perms}) + MinHashLSH(threshold={threshold}: {b}x{r})"


_BITS = (np.uint64(1) << np.arange(64, dtype=np.uint64)).astype(np.uint64)


def simhash_sketcher(bands: int = 4) -> Sketcher:
    """64-bit SimHash of the shingle hashes, stored as 4 x 16-bit words in `sig`; band keys
    are the 16-bit words (pigeonhole: Hamming distance <= 3 shares a band) and the title key.
    No lead signature: the summary-only path is MinHash's."""

    def make(title: str, text: str) -> Sketch | None:
        body, names = stories.body_tokens(text)
        if len(body) < stories.MIN_TOKENS:
            return None
        sh = stories.shingle_hashes(body)
        bits = ((sh[:, None] & _BITS[None, :]) != 0).sum(axis=0) * 2 > len(sh)
        value = int(sum(1 << i for i in range(64) if bits[i]))
        words = np.array([(value >> (16 * i)) & 0xFFFF for i in range(4)], dtype=np.uint32)
        s = stories.assemble(title, body, names, (), words, len(sh))
        keys = tuple(f"{i:02d}:{int(w):04x}" for i, w in enumerate(words))
        return replace(s, bands=keys + stories.title_key(title))

    return make


def simhash_similarity(a: Sketch, b: Sketch) -> float:
    da = sum(x << (16 * i) for i, x in enumerate(a.sig))
    db = sum(x << (16 * i) for i, x in enumerate(b.sig))
    return 1 - (da ^ db).bit_count() / 64


def judge_with(
    similarity: Callable[[Sketch, Sketch], float] = compare.body_similarity,
    body_same: float = compare.BODY_SAME,
    title: bool = True,
    lead: bool = True,
    facts: bool = True,
) -> Judge:
    """`same_story` with another similarity or threshold, or without a guard: title=False
    drops the title guard (body similarity alone decides), lead=False the summary-only path,
    facts=False the facts guard."""

    def judge(a: Sketch, b: Sketch) -> bool:
        body = similarity(a, b)
        t = compare.title_similarity(a, b)
        by_body = body >= body_same and (
            not title
            or t >= compare.TITLE_SAME
            or (body >= max(body_same, compare.BODY_ALONE) and t >= compare.TITLE_FLOOR)
        )
        by_lead = (
            lead
            and t >= compare.TITLE_LEAD
            and min(a.size, b.size) <= compare.LEAD_ONLY_MAX
            and compare.lead_containment(a, b) >= compare.LEAD_SAME
        )
        return (by_body or by_lead) and not (facts and compare.facts_conflict(a, b))

    return judge


def main() -> None:
    passes = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    pairs = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines()]
    items = corpus_items()
    n_same = sum(bool(p["same"]) for p in pairs)

    p, r, c = score(pairs, stories.sketch, compare.same_story)
    print(f"labelled set: {len(pairs)} pairs ({n_same} same, {len(pairs) - n_same} different)")
    print(f"chosen: {stories.PERMS} perms, {stories.BANDS}x{stories.ROWS} bands, "
          f"{stories.SHINGLE}-word shingles, body >= {compare.BODY_SAME} with titles >= "
          f"{compare.TITLE_SAME}, or body >= {compare.BODY_ALONE} with titles >= "
          f"{compare.TITLE_FLOOR}; no substituted fact")  # fmt: skip
    print(f"  precision {p:.3f}  recall {r:.3f}  candidate recall {c:.3f}")

    # what each guard is worth: the same scheme without it
    for label, judge in (
        ("without the facts guard", judge_with(facts=False)),
        ("without the title guard", judge_with(title=False)),
        ("without the summary-only path", judge_with(lead=False)),
        ("body similarity alone", judge_with(title=False, lead=False, facts=False)),
    ):
        p2, r2, _ = score(pairs, stories.sketch, judge)
        print(f"  {label}: precision {p2:.3f}  recall {r2:.3f}")

    print("threshold sweep of BODY_SAME, with the guards / body similarity alone:")
    for t in (0.2, 0.3, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9):
        p2, r2, _ = score(pairs, stories.sketch, judge_with(body_same=t))
        bare = judge_with(body_same=t, title=False, lead=False, facts=False)
        p3, r3, _ = score(pairs, stories.sketch, bare)
        print(f"  {t:.2f}: precision {p2:.3f}  recall {r2:.3f}   alone: precision {p3:.3f}  "
              f"recall {r3:.3f}")  # fmt: skip

    sketchers: dict[str, Sketcher] = {"chosen": stories.sketch}
    for perms, bands in VARIANTS:
        sketchers[f"{perms}/{bands}"] = lambda t, x, pm=perms, bd=bands: stories.sketch_with(
            t, x, perms=pm, bands=bd
        )
    try:
        ds, ds_label = datasketch_sketcher()
        sketchers["datasketch"] = ds
    except ImportError:
        ds_label = ""
    sketchers["simhash"] = simhash_sketcher()
    speeds = rates(sketchers, items, passes)
    base = speeds["chosen"]
    sketches = [stories.sketch(t, x) for t, x in items]
    kept = [s for s in sketches if s is not None]
    sizes = [len(s.dumps()) for s in kept]
    print(f"sketch(): {base:,.0f} items/s ({1e3 / base:.3f} ms/item) over {len(items)} corpus "
          f"items ({len(kept)} sketched, {len(items) - len(kept)} too short); dumps() "
          f"{int(np.median(sizes))} bytes median, {max(sizes)} max")  # fmt: skip
    judged = [(a, b) for a in kept[:200] for b in kept[200:260]]
    started = time.perf_counter()
    for a, b in judged:
        compare.same_story(a, b)
    rate = len(judged) / (time.perf_counter() - started)
    hard = [(stories.sketch(p["a"]["title"], p["a"]["text"]),
             stories.sketch(p["b"]["title"], p["b"]["text"])) for p in pairs]  # fmt: skip
    started = time.perf_counter()
    for a, b in hard * 4:
        compare.same_story(a, b)  # type: ignore[arg-type]
    hard_rate = len(hard) * 4 / (time.perf_counter() - started)
    print(f"same_story(): {rate:,.0f} calls/s on unrelated items, {hard_rate:,.0f} calls/s on "
          f"the labelled pairs (similar bodies: the facts are aligned)")  # fmt: skip
    print(f"candidates per corpus item (band fan-out): {candidates_per_item(sketches):.2f}")

    print("alternatives (same cleaning and guards; rates as a ratio of the chosen sketch()):")
    alone = judge_with(title=False, lead=False, facts=False)
    for k in (1, 2, 3, 4, 5):
        fn = lambda t, x, k=k: stories.sketch_with(t, x, shingle=k)  # noqa: E731
        p2, r2, c2 = score(pairs, fn, compare.same_story)
        p3, r3, _ = score(pairs, fn, alone)
        print(f"  {k}-word shingles: precision {p2:.3f}  recall {r2:.3f}  candidate recall "
              f"{c2:.3f}; body similarity alone: precision {p3:.3f} recall {r3:.3f}")  # fmt: skip
    for perms, bands in VARIANTS:
        fn = sketchers[f"{perms}/{bands}"]
        p2, r2, c2 = score(pairs, fn, compare.same_story)
        fan = candidates_per_item(fn(t, x) for t, x in items)
        speed = speeds[f"{perms}/{bands}"] / base
        print(f"  {perms} perms, {bands}x{perms // bands} body bands: precision {p2:.3f}  "
              f"recall {r2:.3f}  candidate recall {c2:.3f}  fan-out {fan:.2f}  "
              f"speed x{speed:.2f}")  # fmt: skip
    if not ds_label:
        print("  datasketch: not installed (pip install datasketch)")
    else:
        p2, r2, c2 = score(pairs, sketchers["datasketch"], compare.same_story)
        speed = speeds["datasketch"] / base
        print(f"  {ds_label}: precision {p2:.3f}  recall {r2:.3f}  candidate recall {c2:.3f}  "
              f"speed x{speed:.2f}")  # fmt: skip
    sim = sketchers["simhash"]
    speed = speeds["simhash"] / base
    for t in (0.8, 0.85, 0.9, 0.95):
        p2, r2, c2 = score(pairs, sim, judge_with(simhash_similarity, t))
        print(f"  SimHash 64-bit, similarity >= {t} (Hamming <= {round((1 - t) * 64)}): "
              f"precision {p2:.3f}  recall {r2:.3f}  candidate recall {c2:.3f}  "
              f"speed x{speed:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
