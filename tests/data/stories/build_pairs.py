"""Builds tests/data/stories/pairs.jsonl, the labelled set of story identity, deterministically.

    .venv/bin/python tests/data/stories/build_pairs.py

The committed pairs.jsonl is the test data; this script says where each pair came from.
Sources: the corpus items (tests/data/corpus/*.xml, parsed with monitor.parse) and
`hand.py` beside this file (hard cases written by hand). Kinds:

same (true):
    real_copy                the Iran sanctions wire story in the CNA and Reuters feeds
    suffix, credit, comma_dash, add_sentence, trim_sentence, reword, dateline, boilerplate
                             one edit of a corpus item, as syndication makes it
    combo                    two or three of those edits, on one side or both
    heavy_rewrite            four to six edits, rewording up to three sentences
    short_combo              two or three edits of a story under 50 words
    lead_only                the first two sentences of a story, beside the whole story
    hand_same                rewrites written by hand
different (false):
    same_feed                consecutive items of one feed
    same_topic               items of the corpus that share key words of their headlines
    template                 another event in the same words: numbers, day, place or name
                             changed throughout the title and the body
    template_body            the template headline and lead about another event, with the
                             body of another report
    shared_boilerplate       two different items that carry the same long paragraph
    same_title               one headline over another report, whole or its lead only
    hand_different           hard cases written by hand (another day's launch, another toll...)
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from hand import BOILERPLATE, HAND  # noqa: E402

from monitor.parse import parse_feed  # noqa: E402

SKIP_FEEDS = {"ibash_windows1251.xml"}  # numbered quotes, not news
SUFFIXES = (" | World", " - Seoul", " - BBC News", " – The Guardian", " | Reuters",
            " - The Japan Times", " | CNA", " — Asia")  # fmt: skip
CREDITS = (
    "Reporting by Hyonhee Shin; Editing by Ed Davies",
    "(Reporting by Parisa Hafezi in Dubai; Editing by William Mallard)",
    "Writing by Michelle Nichols; Editing by Sandra Maler",
    "Additional reporting by Joyce Lee in Seoul; Editing by Lincoln Feast.",
)
DATELINES = ("SEOUL, May 9 (Yonhap) -- ", "WASHINGTON (Reuters) - ", "LONDON: ",
             "(Reuters) - ", "TOKYO, June 3 (AP) — ")  # fmt: skip
ADDED = (
    "The ministry did not immediately respond to a request for comment.",
    "Officials said more details would be released later.",
    "The story is developing and will be updated.",
    "Analysts said the move could have wider consequences for the region.",
    "It was not clear how many people had been affected.",
    "A spokesperson declined to comment further when contacted by reporters.",
)
TRAILERS = (
    "The post {title} appeared first on World News Daily.",
    "Join the mailing list",
    "Click here to read the full story.",
    "Sign up for our morning briefing newsletter.",
)
REWORD = (
    (r"\bsaid\b", "stated"), (r"\bsays\b", "said"), (r"\bannounced\b", "unveiled"),
    (r"\bpeople\b", "persons"), (r"\bgovernment\b", "administration"), (r"\babout\b", "around"),
    (r"\bmore than\b", "over"), (r"\bafter\b", "following"), (r"\balso\b", "additionally"),
    (r"\bbut\b", "however"), (r"\bwill\b", "is set to"), (r"\bhas\b", "had"),
    (r"\bnew\b", "fresh"), (r"\bbig\b", "large"), (r"\bshow\b", "indicate"),
)  # fmt: skip
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
PLACES = ("Wonsan", "Hamhung", "Kaesong", "Basra", "Mosul", "Kharkiv", "Odesa", "Lyon",
          "Porto", "Nagoya", "Sendai", "Mombasa", "Cordoba", "Tabriz", "Aleppo")  # fmt: skip


def load_items() -> list[dict[str, str]]:
    """Corpus items with a body of 25 words or more (counted on the raw text: the set must not
    depend on the algorithm it tests) and a headline of 4 words or more."""
    fetched = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    out = []
    for path in sorted((ROOT / "tests/data/corpus").glob("*.xml")):
        if path.name in SKIP_FEEDS:
            continue
        try:
            feed = parse_feed(
                path.read_bytes(), feed_id=path.stem, base_url=None, fetched_at=fetched
            )
        except Exception:
            continue
        for item in feed.items:
            text = "\n".join(t for t in (item.summary, item.content) if t)
            if len(text.split()) >= 25 and len(item.title.split()) >= 4:
                out.append({"feed": path.stem, "title": item.title, "text": text})
    return out


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


# --- same-story edits ---------------------------------------------------------------------------
def e_suffix(r: random.Random, t: str, x: str) -> tuple[str, str]:
    return t + r.choice(SUFFIXES), x


def e_credit(r: random.Random, t: str, x: str) -> tuple[str, str]:
    c = r.choice(CREDITS)
    return t, (x + " " + c) if c.startswith("(") else (x + "\n" + c)


def e_comma_dash(r: random.Random, t: str, x: str) -> tuple[str, str]:
    for a, b in ((", ", " – "), (": ", " – "), (" – ", ", "), (" - ", ", ")):
        if a in t:
            return t.replace(a, b, 1), x
    return t + " – officials say", x


def e_add_sentence(r: random.Random, t: str, x: str) -> tuple[str, str]:
    return t, x.rstrip() + " " + r.choice(ADDED)


def e_trim_sentence(r: random.Random, t: str, x: str) -> tuple[str, str]:
    s = sentences(x)
    return (t, " ".join(s[:-1])) if len(s) >= 3 else (t, x)


def e_reword(r: random.Random, t: str, x: str) -> tuple[str, str]:
    s = sentences(x)
    order = list(range(len(s)))
    r.shuffle(order)
    for i in order:
        for pat, rep in REWORD:
            if re.search(pat, s[i]):
                s[i] = re.sub(pat, rep, s[i], count=1)
                return t, " ".join(s)
    words = s[0].split()
    words.insert(min(3, len(words)), "reportedly")
    s[0] = " ".join(words)
    return t, " ".join(s)


def e_dateline(r: random.Random, t: str, x: str) -> tuple[str, str]:
    return t, r.choice(DATELINES) + x


def e_boilerplate(r: random.Random, t: str, x: str) -> tuple[str, str]:
    return t, x + "\n" + r.choice(TRAILERS).format(title=t)


EDITS = {
    "suffix": e_suffix, "credit": e_credit, "comma_dash": e_comma_dash,
    "add_sentence": e_add_sentence, "trim_sentence": e_trim_sentence, "reword": e_reword,
    "dateline": e_dateline, "boilerplate": e_boilerplate,
}  # fmt: skip


# --- another event in the same words --------------------------------------------------------
def another_event(r: random.Random, t: str, x: str) -> tuple[str, str] | None:
    """Numbers, days and one name of the lead changed everywhere: another event, same words."""
    subs: dict[str, str] = {}
    lead = x[: len(" ".join(x.split()[:50]))]
    for n in re.findall(r"\b\d{1,4}\b", lead)[:2]:
        subs[n] = str(int(n) + r.randint(1, 9))
    for w in NUMBER_WORDS:
        if re.search(rf"\b{w}\b", lead, re.I):
            subs[w] = NUMBER_WORDS[(NUMBER_WORDS.index(w) + r.randint(1, 4)) % len(NUMBER_WORDS)]
            break
    for d in DAYS:
        if d in lead:
            subs[d] = DAYS[(DAYS.index(d) + r.randint(1, 6)) % 7]
            break
    names = [m for m in re.findall(r"(?<=[a-z,] )([A-Z][a-z]{3,})\b", lead) if m not in DAYS]
    if names:
        subs[r.choice(names)] = r.choice(PLACES)
    if not subs:
        return None  # nothing of the lead to change: not a template of another event
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in subs) + r")\b")

    def swap(s: str) -> str:
        return pattern.sub(lambda m: subs[m.group(0)], s)

    return swap(t), swap(x)


def pair(kind: str, a: tuple[str, str], b: tuple[str, str], same: bool) -> dict[str, object]:
    return {"a": {"title": a[0], "text": a[1]}, "b": {"title": b[0], "text": b[1]},
            "same": same, "kind": kind}  # fmt: skip


def key_words(title: str) -> set[str]:
    return {w.casefold() for w in re.findall(r"[A-Z][\w'-]{3,}", title)} - {"with", "after", "from"}


def build() -> list[dict[str, object]]:
    r = random.Random(14)
    items = load_items()
    out: list[dict[str, object]] = []

    # the real copy
    iran = [i for i in items if i["title"] == "Iran condemns US plans to announce new sanctions"]
    assert len(iran) == 2, iran
    out.append(pair("real_copy", (iran[0]["title"], iran[0]["text"]),
                    (iran[1]["title"], iran[1]["text"]), True))  # fmt: skip
    rhetoric = next(i for i in items if i["title"].startswith("US, Iran keep up hostile"))
    for i in iran:
        out.append(pair("same_topic", (i["title"], i["text"]),
                        (rhetoric["title"], rhetoric["text"]), False))  # fmt: skip

    pool = items[:]
    r.shuffle(pool)
    names = list(EDITS)
    # one edit each, cycling through the edits
    for n, it in enumerate(pool[:160]):
        kind = names[n % len(names)]
        b = EDITS[kind](r, it["title"], it["text"])
        out.append(pair(kind, (it["title"], it["text"]), b, True))
    # combinations
    for it in pool[160:240]:
        a = (it["title"], it["text"])
        b = a
        chosen = r.sample(names, r.randint(2, 3))
        for k in chosen:
            b = EDITS[k](r, *b)
        if r.random() < 0.5:
            a = EDITS[r.choice(names)](r, *a)
        out.append(pair("combo", a, b, True))

    # consecutive items of one feed
    by_feed: dict[str, list[dict[str, str]]] = {}
    for it in items:
        by_feed.setdefault(it["feed"], []).append(it)
    consecutive = [(f[i], f[i + 1]) for f in by_feed.values() for i in range(len(f) - 1)]
    for x, y in r.sample(consecutive, 60):
        out.append(pair("same_feed", (x["title"], x["text"]), (y["title"], y["text"]), False))

    # same topic: headlines sharing two key words
    topical = []
    for i, x in enumerate(items):
        for y in items[i + 1 :]:
            if x["title"] != y["title"] and len(key_words(x["title"]) & key_words(y["title"])) >= 2:
                topical.append((x, y))
    for x, y in r.sample(topical, min(60, len(topical))):
        out.append(pair("same_topic", (x["title"], x["text"]), (y["title"], y["text"]), False))

    # another event in the same words, with and without the rest of the body changed
    made = 0
    for it in pool[240:]:
        ev = another_event(r, it["title"], it["text"])
        if ev is None:
            continue
        a = (it["title"], it["text"])
        if made % 2 == 0:
            out.append(pair("template", a, ev, False))
        else:
            other = r.choice(by_feed[it["feed"]])
            lead = sentences(ev[1])[:1]
            rest = sentences(other["text"])[1:]
            if other is it or lead == sentences(it["text"])[:1] or len(rest) < 2:
                continue  # the lead must be about another event, the rest another report
            out.append(pair("template_body", a, (ev[0], " ".join(lead + rest)), False))
        made += 1
        if made >= 60:
            break

    # two different stories carrying one long paragraph (at the end, or at the start)
    for n, (x, y) in enumerate(r.sample(consecutive, 40)):
        para = BOILERPLATE[n % len(BOILERPLATE)]

        def cut(text: str) -> str:
            return " ".join(sentences(text)[:2])

        if n % 2:
            out.append(pair("shared_boilerplate", (x["title"], cut(x["text"]) + "\n" + para),
                            (y["title"], cut(y["text"]) + "\n" + para), False))  # fmt: skip
        else:
            out.append(pair("shared_boilerplate", (x["title"], para + "\n" + cut(x["text"])),
                            (y["title"], para + "\n" + cut(y["text"])), False))  # fmt: skip

    # heavier rewrites: four to six edits, the reword up to three times
    for it in pool[300:330]:
        a = (it["title"], it["text"])
        b = a
        chosen = r.sample(names, r.randint(3, 5)) + ["reword"] * r.randint(1, 2)
        for k in chosen:
            b = EDITS[k](r, *b)
        out.append(pair("heavy_rewrite", a, b, True))

    # short stories (under 50 words) with two or three edits: few shingles, so each edit counts
    short = [it for it in pool if len(it["text"].split()) < 50]
    for it in short[:25]:
        a = (it["title"], it["text"])
        b = a
        for k in r.sample(names, r.randint(2, 3)):
            b = EDITS[k](r, *b)
        out.append(pair("short_combo", a, b, True))

    # a feed that carries only the lead of a story another feed carries whole
    long = [it for it in pool if len(sentences(it["text"])) >= 5 and len(it["text"].split()) >= 80]
    for it in long[:25]:
        lead = " ".join(sentences(it["text"])[:2])
        b = EDITS[r.choice(("suffix", "credit", "comma_dash", "dateline"))](r, it["title"], lead)
        out.append(pair("lead_only", (it["title"], it["text"]), b, True))

    # the same headline over another report (a recurring column, a daily briefing)
    for it in long[25:45]:
        other = r.choice([o for o in by_feed[it["feed"]] if o is not it] or [r.choice(items)])
        b = (it["title"] + r.choice(SUFFIXES), other["text"])
        out.append(pair("same_title", (it["title"], it["text"]), b, False))
        lead = " ".join(sentences(other["text"])[:2])
        out.append(pair("same_title", (it["title"], it["text"]), (it["title"], lead), False))

    for kind, a, b in HAND:
        out.append(pair(kind, a, b, kind == "hand_same"))
    return out


def main() -> None:
    pairs = build()
    with (HERE / "pairs.jsonl").open("w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    same = sum(bool(p["same"]) for p in pairs)
    print(f"{len(pairs)} pairs, {same} same, {len(pairs) - same} different")


if __name__ == "__main__":
    main()
