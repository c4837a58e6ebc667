"""Watchlist matching throughput: our indexed matcher against a naive regex baseline.

    .venv/bin/python bench/match.py                    # 10, 100, 1000, 10000 rules; 10,000 items
    .venv/bin/python bench/match.py --rules 10,1000 --items 3000

Rules are generated from realistic term lists (countries, leaders, weapons, organisations,
topics) plus a long tail of names taken from the corpus, in several shapes: phrase AND word,
groups, OR, NOT, NEAR/n, title: scopes. Items are the corpus feeds' titles and descriptions,
padded to --items with items recombined from the corpus's own titles and sentences.

For each rule count it prints: watchlist load+compile time (YAML included), items/s for ours
and for the baseline (each rule as compiled regexes tried on every item, on folded text), the
ratio, memory (tracemalloc, in a separate pass since tracing slows Python): ours at its peak
over load and matching (the YAML loader's tree included) and what the loaded watchlist keeps,
the baseline's peak; and it checks that both find exactly the same (item, rule) pairs. The
baseline runs on a subset of the items when rules x items would take too long
(--baseline-evals). Times are CPU time of this process (time.process_time), so that other
work on a shared machine does not skew the ratios. Exit status 1 if the match sets differ.
"""

from __future__ import annotations

import argparse
import gc
import html
import random
import re
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.models import ItemData  # noqa: E402
from monitor.rules import load_watchlist  # noqa: E402
from monitor.rules.text import fold  # noqa: E402

CORPUS_DIRS = [ROOT / "tests/data/corpus", Path("/work/shared/corpus/feeds")]

COUNTRIES = [
    "North Korea", "South Korea", "Iran", "Iraq", "Russia", "Ukraine", "China", "Taiwan",
    "Israel", "Syria", "Yemen", "Pakistan", "India", "Japan", "Afghanistan", "Libya", "Turkey",
    "Saudi Arabia", "Lebanon", "Venezuela", "Cuba", "Belarus", "Georgia", "Somalia", "Sudan",
    "Nigeria", "Mali", "Egypt", "Qatar", "Philippines", "Vietnam", "Germany", "France",
    "Britain", "Poland", "Gaza", "Crimea", "Kashmir", "Hawaii", "Korea",
]  # fmt: skip
LEADERS = [
    "Kim Jong-un", "Xi Jinping", "Vladimir Putin", "Putin", "Zelensky", "Trump", "Obama",
    "Biden", "Netanyahu", "Khamenei", "Rouhani", "Erdogan", "Modi", "Abe", "Moon Jae-in",
    "Assad", "Maduro", "Merkel", "Macron", "May", "Johnson", "Bolton", "Pompeo", "Mattis",
]  # fmt: skip
WEAPONS = [
    "missile", "missile*", "drone*", "ICBM", "warship*", "submarine*", "artillery", "tank*",
    "rocket*", "nuclear", "bomber*", "fighter jet*", "air defence", "cruise missile*",
    "ballistic missile*", "hypersonic", "warhead*", "B-52", "F-35", "airstrike*", "mortar*",
    "frigate*", "destroyer*", "satellite*",
]  # fmt: skip
ORGS = [
    "NATO", "IAEA", "Pentagon", "Hamas", "Hezbollah", "Houthi*", "ASEAN", "Security Council",
    "European Union", "Kremlin", "White House", "State Department", "Taliban", "Islamic State",
    "Air Force", "Navy", "Army", "Marines", "Red Cross", "World Bank",
]  # fmt: skip
TOPICS = [
    "sanctions", "talks", "summit", "attack*", "strike*", "test*", "launch*", "ceasefire",
    "election*", "protest*", "exercise*", "drill*", "deal", "treaty", "invasion", "troops",
    "refugees", "blockade", "cyber*", "espionage", "spy", "hostage*", "embassy", "killed",
]  # fmt: skip
SPORTS = ["football", "basketball", "cricket", "olympic*", "tennis", "golf"]
GROUPS = {
    "dprk": ["North Korea", "DPRK", "Pyongyang", "Kim Jong-un"],
    "missile": ["missile*", "ICBM", "SLBM", "ballistic missile", "Hwasong*"],
    "russia": ["Russia*", "Kremlin", "Putin", "Moscow"],
    "mideast": ["Israel*", "Gaza", "Hamas", "Hezbollah", "Lebanon", "Syria*"],
    "sport": SPORTS,
}

# --- corpus ----------------------------------------------------------------------------------

_BLOCK = re.compile(r"<(item|entry)\b.*?</\1>", re.S | re.I)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title>", re.S | re.I)
_DESC = re.compile(r"<(description|summary|content)\b[^>]*>(.*?)</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")


def _clean(text: str) -> str:
    text = text.replace("<![CDATA[", "").replace("]]>", "")
    for _ in range(2):  # descriptions are often HTML escaped inside XML
        text = html.unescape(_TAG.sub(" ", text))
    return " ".join(_TAG.sub(" ", text).split())


def corpus_items() -> list[tuple[str, str]]:
    folder = next((d for d in CORPUS_DIRS if d.is_dir()), None)
    if folder is None:
        raise SystemExit("no corpus found in " + ", ".join(map(str, CORPUS_DIRS)))
    out = []
    for path in sorted(folder.glob("*.xml")):
        raw = path.read_bytes().decode("utf-8", "replace")
        for m in _BLOCK.finditer(raw):
            block = m.group(0)
            t = _TITLE.search(block)
            d = _DESC.search(block)
            title = _clean(t.group(1)) if t else ""
            desc = _clean(d.group(2))[:2000] if d else ""
            if title or desc:
                out.append((title, desc))
    return out


def make_items(n: int, rnd: random.Random) -> list[ItemData]:
    real = corpus_items()
    titles = [t for t, _ in real if t]
    sentences = [s for _, d in real for s in re.split(r"(?<=[.!?])\s+", d) if len(s) > 30]
    pairs = list(real)
    while len(pairs) < n:
        k = rnd.randint(2, 6)
        pairs.append((rnd.choice(titles), " ".join(rnd.choice(sentences) for _ in range(k))))
    return [
        ItemData(feed_id=f"feed{i % 50}", guid=str(i), url=None, title=t, summary=d)
        for i, (t, d) in enumerate(pairs[:n])
    ]


_CALENDAR_TEXT = (
    "Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April "
    "June July August September October November December"
)
_CALENDAR = set(_CALENDAR_TEXT.split())


def long_tail(items: list[ItemData], k: int = 3000) -> list[str]:
    """Proper names from the corpus: the long tail of a real watchlist's vocabulary.

    Capitalized words that never occur in lower case (so not "This", "Force" or "Continue"),
    no weekdays or months, most frequent first, without the 20 most frequent (which the core
    term lists already cover: Trump, Iran, Russia...).
    """
    caps: dict[str, int] = {}
    lower: set[str] = set()
    for it in items:
        text = it.title + " " + it.summary
        for w in re.findall(r"\b[A-Z][a-z]{3,}\b", text):
            caps[w] = caps.get(w, 0) + 1
        lower.update(re.findall(r"\b[a-z]{4,}\b", text))
    names = [w for w in caps if w.lower() not in lower and w not in _CALENDAR]
    names.sort(key=lambda w: (-caps[w], w))
    return names[20 : 20 + k]


# --- rules: one spec, two implementations ---------------------------------------------------
# A spec is a tuple tree: ("term", text) | ("group", name) | ("and", a, b...) | ("or", a, b...)
# | ("not", a) | ("near", n, a, b) | ("title", a).

Spec = tuple[Any, ...]


def rand_rule(rnd: random.Random, tail: list[str]) -> Spec:
    def pick(lst: list[str]) -> Spec:
        if tail and rnd.random() < 0.35:
            return ("term", rnd.choice(tail))
        return ("term", rnd.choice(lst))

    shape = rnd.randrange(9)
    if shape == 0:
        return ("and", pick(COUNTRIES), pick(WEAPONS))
    if shape == 1:
        return ("and", pick(LEADERS), ("or", pick(WEAPONS), pick(ORGS)))
    if shape == 2:
        return ("and", ("group", rnd.choice(["dprk", "russia", "mideast"])), pick(TOPICS))
    if shape == 3:
        return ("and", pick(COUNTRIES), pick(TOPICS), ("not", ("group", "sport")))
    if shape == 4:
        return ("near", rnd.choice([3, 5, 10, 15]), pick(LEADERS), pick(COUNTRIES))
    if shape == 5:
        return ("and", ("title", pick(COUNTRIES)), pick(ORGS))
    if shape == 6:
        return ("or", ("and", pick(ORGS), pick(WEAPONS)), ("and", pick(COUNTRIES), pick(TOPICS)))
    if shape == 7:
        return ("and", ("group", "missile"), pick(COUNTRIES), ("not", pick(SPORTS)))
    return ("and", ("term", rnd.choice(tail or COUNTRIES)), ("or", pick(TOPICS), pick(WEAPONS)))


def to_query(s: Spec) -> str:
    kind = s[0]
    if kind == "term":
        t = s[1]
        return f'"{t}"' if " " in t or "-" in t else t
    if kind == "group":
        return "@" + s[1]
    if kind == "and":
        return " + ".join(_paren(x) for x in s[1:])
    if kind == "or":
        return " OR ".join(_paren(x) for x in s[1:])
    if kind == "not":
        return "-" + _paren(s[1])
    if kind == "near":
        return f"{_paren(s[2])} NEAR/{s[1]} {_paren(s[3])}"
    if kind == "title":
        return "title:" + _paren(s[1])
    raise ValueError(kind)


def _paren(s: Spec) -> str:
    q = to_query(s)
    return f"({q})" if s[0] in ("and", "or", "near") else q


# Baseline: every leaf becomes a regex over the folded field text; nothing is shared or indexed.

_ABBREV = re.compile(r"\b(?:[^\W\d_]\.){2,}|\b(?:[^\W\d_]\.)+[^\W\d_]\b")
_POSS = re.compile(r"'s\b")


def baseline_prep(text: str) -> str:
    """The naive equivalent of our normalization, so that both find the same things."""
    t = fold(text).replace("\x03", "")
    t = _ABBREV.sub(lambda m: m.group().replace(".", ""), t)
    return _POSS.sub("", t).replace("'", "")


def _leaf_regex(text: str) -> str:
    words = re.findall(r"[^\W_]+\*?", fold(text).replace("'", ""))
    parts = []
    for w in words:
        if w.endswith("*"):
            parts.append(re.escape(w[:-1]) + r"[^\W_]*")
        else:
            parts.append(re.escape(w) + r"(?![^\W_])")
    return r"(?<![^\W_])" + r"[\W_]+".join(parts)


Evaluator = Callable[[list[str]], bool]  # field texts: [title, summary]


def baseline(s: Spec, fields: tuple[int, ...] = (0, 1)) -> tuple[Evaluator, str | None]:
    """An evaluator for the spec, and its regex source when it is positional."""
    kind = s[0]
    if kind in ("term", "group"):
        members = GROUPS[s[1]] if kind == "group" else [s[1]]
        src = "(?:" + "|".join(_leaf_regex(m) for m in members) + ")"
        rx = re.compile(src)
        return (lambda f: any(rx.search(f[i]) for i in fields)), src
    if kind == "title":
        return baseline(s[1], (0,))
    if kind == "and":
        kids = [baseline(k, fields)[0] for k in s[1:]]
        return (lambda f: all(k(f) for k in kids)), None
    if kind == "or":
        kids2 = [baseline(k, fields) for k in s[1:]]
        ev = [k[0] for k in kids2]
        srcs = [k[1] for k in kids2]
        src = "(?:" + "|".join(x for x in srcs if x) + ")" if all(srcs) else None
        return (lambda f: any(k(f) for k in ev)), src
    if kind == "not":
        kid = baseline(s[1], fields)[0]
        return (lambda f: not kid(f)), None
    if kind == "near":
        n = s[1]
        a = baseline(s[2], fields)[1]
        b = baseline(s[3], fields)[1]
        gap = rf"(?:[\W_]+[^\W_]+){{0,{n}}}[\W_]+"
        rx = re.compile(f"{a}{gap}{b}|{b}{gap}{a}")
        return (lambda f: any(rx.search(f[i]) for i in fields)), None
    raise ValueError(kind)


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Result:
    rules: int
    load_s: float
    ours_ips: float
    base_ips: float
    base_items: int
    ours_peak_mb: float
    ours_kept_mb: float
    base_peak_mb: float
    hits_per_item: float
    same: bool


def write_watchlist(specs: list[Spec], folder: Path) -> Path:
    lines = ["groups:"]
    for name, members in GROUPS.items():
        quoted = ", ".join(f'"{m}"' for m in members)
        lines.append(f"  {name}: [{quoted}]")
    lines.append("rules:")
    for i, s in enumerate(specs):
        q = to_query(s).replace("'", "''")
        lines.append(f"  - id: r{i}\n    query: '{q}'")
    path = folder / f"watchlist-{len(specs)}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(n_rules: int, items: list[ItemData], tail: list[str], args: argparse.Namespace) -> Result:
    rnd = random.Random(n_rules)
    specs = [rand_rule(rnd, tail) for _ in range(n_rules)]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_watchlist(specs, Path(tmp))
        t0 = time.process_time()
        wl = load_watchlist(path, env={})
        load_s = time.process_time() - t0

        # ours: speed
        ours: set[tuple[int, str]] = set()
        n_hits = 0
        t0 = time.process_time()
        for i, it in enumerate(items):
            for h in wl.match(it):
                ours.add((i, h.rule_id))
                n_hits += 1
        ours_s = time.process_time() - t0

        # baseline: speed, on as many items as the budget allows
        evals = [baseline(s)[0] for s in specs]
        n_base = max(50, min(len(items), int(args.baseline_evals // n_rules)))
        base: set[tuple[int, str]] = set()
        t0 = time.process_time()
        for i, it in enumerate(items[:n_base]):
            fields = [baseline_prep(it.title), baseline_prep(it.summary)]
            for r, ev in enumerate(evals):
                if ev(fields):
                    base.add((i, f"r{r}"))
        base_s = time.process_time() - t0
        ours_sub = {p for p in ours if p[0] < n_base}
        same = ours_sub == base
        if not same:
            show_differences(ours_sub, base, items, specs)

        # memory, in separate traced passes: peak over load + matching, and what stays
        mem_items = items[: min(args.memory_items, n_base)]
        del wl
        gc.collect()
        tracemalloc.start()
        wl2 = load_watchlist(path, env={})
        gc.collect()
        ours_kept = tracemalloc.get_traced_memory()[0]
        for it in mem_items:
            wl2.match(it)
        ours_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del wl2
        tracemalloc.start()
        evals2 = [baseline(s)[0] for s in specs]
        for it in mem_items:
            fields = [baseline_prep(it.title), baseline_prep(it.summary)]
            for ev in evals2:
                ev(fields)
        base_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del evals2
    return Result(
        rules=n_rules,
        load_s=load_s,
        ours_ips=len(items) / ours_s,
        base_ips=n_base / base_s,
        base_items=n_base,
        ours_peak_mb=ours_peak / 1e6,
        ours_kept_mb=ours_kept / 1e6,
        base_peak_mb=base_peak / 1e6,
        hits_per_item=n_hits / len(items),
        same=same,
    )


def show_differences(
    ours: set[tuple[int, str]], base: set[tuple[int, str]], items: list[ItemData], specs: list[Spec]
) -> None:
    for label, diff in (("only ours", ours - base), ("only baseline", base - ours)):
        for i, rid in sorted(diff)[:5]:
            it = items[i]
            print(f"  {label}: item {i} rule {rid} {to_query(specs[int(rid[1:])])!r}")
            print(f"     title={it.title[:120]!r}\n     summary={it.summary[:300]!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rules", default="10,100,1000,10000")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--baseline-evals", type=float, default=4e6, help="rules x items budget")
    ap.add_argument("--memory-items", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    items = make_items(args.items, rnd)
    tail = long_tail(items)
    chars = sum(len(i.title) + len(i.summary) for i in items) / len(items)
    print(f"{len(items)} items, {chars:.0f} characters each on average; {len(tail)} tail names")
    print(
        f"{'rules':>6} {'load s':>7} {'ours it/s':>10} {'base it/s':>10} {'ratio':>7} "
        f"{'base on':>8} {'ours MB':>8} {'kept MB':>8} {'base MB':>8} {'hits/it':>8} same"
    )
    results = []
    for n in (int(x) for x in args.rules.split(",")):
        r = run(n, items, tail, args)
        results.append(r)
        print(
            f"{r.rules:>6} {r.load_s:>7.2f} {r.ours_ips:>10.0f} {r.base_ips:>10.1f} "
            f"{r.ours_ips / r.base_ips:>6.0f}x {r.base_items:>8} {r.ours_peak_mb:>8.1f} "
            f"{r.ours_kept_mb:>8.1f} "
            f"{r.base_peak_mb:>8.1f} {r.hits_per_item:>8.2f} {'yes' if r.same else 'NO'}",
            flush=True,
        )
    if len(results) > 1:
        first, last = results[0], results[-1]
        print(
            f"ours at {last.rules} rules keeps {last.ours_ips / first.ours_ips:.0%} of its "
            f"{first.rules}-rule throughput"
        )
    return 0 if all(r.same for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
