"""Page chrome and boilerplate: the story alone out of a whole web page, with its publisher
and dateline."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from monitor.normalize.dates import parse_dateline
from monitor.normalize.text import loose_key

UTC = dt.UTC

# --- page chrome and boilerplate ---------------------------------------------------------
# Lines that are never story text wherever they stand: share widgets, ad slots, nav labels.
# Each is a regex matched against the whole line, case-insensitively.
LINE_JUNK: tuple[str, ...] = (
    r"advertisement",
    r"advertising",
    r"sponsored( content)?",
    r"bookmark",
    r"share( this( article| story| page)?)?( on \w+)?:?",
    r"(whatsapp|telegram|facebook|twitter|x|email|e-mail|linkedin|reddit|print|copy link)",
    r"skip to (main )?content",
    r"back to top",
    r"scroll to (continue|top)( with content)?",
)
# Lines dropped only at the start of the text (page banners) or only at its end (footers,
# teasers' tails). Whole-line regexes, case-insensitive. Kept apart because a pattern safe at
# the end ("Subscribe ...") could eat a one-line summary's opening.
LEADING_BOILERPLATE: tuple[str, ...] = (
    r".{0,200}\bjoin now\W*",
    r"(home|menu|search|log ?in|sign ?in|register)( \| .{0,40})*",
    r"(breaking|developing)( news)?:?",
)
TRAILING_BOILERPLATE: tuple[str, ...] = (
    r".{0,200}\bjoin now\W*",
    r"join (the|our) mailing list.{0,80}",
    r"(sign up|subscribe)\b.{0,80}",
    r"(click|tap) here\b.{0,80}",
    r"(continue|keep) reading\W{0,5}(\b.{0,40})?",
    r"read (more|the full (story|article))\b.{0,40}",
    r"(follow|like) us on\b.{0,80}",
    r"the post .{1,300} appeared first on .{1,120}",
    r"(copyright\s*)?(©|\(c\)|copyright)\s*(\d{4}\s*)?(-\s*\d{4}\s*)?\d{4}\b.{0,120}",
    r"all rights reserved\W*",
    r"related( (articles|stories|coverage|news))?:?",
    r"(see also|also read|read also):?",
    r"print (this )?(page|article|story)",
)
_LINE_JUNK_RE = re.compile("|".join(f"(?:{p})" for p in LINE_JUNK), re.I)


class _WholeLine:
    """Whole-line patterns, case-insensitive. One that may start anywhere (`.{0,N}\\brest`)
    is tried only on a line where `rest` is found (a line it matches contains it): its
    leading `.{0,200}` makes every line's fullmatch try up to 200 starts, 3 µs on a
    summary's line, and a search for `rest` without the `\\b` costs 0.8."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        anywhere = [p for p in patterns if _ANYWHERE.match(p)]
        anchored = [p for p in patterns if p not in anywhere]
        self._anchored = re.compile("|".join(f"(?:{p})" for p in anchored), re.I)
        self._anywhere = [
            (re.compile(_ANYWHERE.sub("", p, count=1), re.I), re.compile(p, re.I)) for p in anywhere
        ]

    def fullmatch(self, line: str) -> bool:
        if self._anchored.fullmatch(line):
            return True
        return any(rest.search(line) and whole.fullmatch(line) for rest, whole in self._anywhere)


_ANYWHERE = re.compile(r"\.\{0,\d+\}(?:\\b)?")
_LEADING_RE = _WholeLine(LEADING_BOILERPLATE)
_TRAILING_RE = _WholeLine(TRAILING_BOILERPLATE)

HEAD_WINDOW = 15  # the title must be among the first lines for lines above it to be a header
HEADER_LINE_MAX = 200  # a longer line above the title is story, not page header
_CONNECTORS = frozenset({"of", "the", "and", "de", "la", "le", "du", "des", "al", "el", "for", "&"})


@dataclass(frozen=True, slots=True)
class Story:
    text: str
    publisher: str | None = None
    dateline: dt.datetime | None = None


def _publisherish(line: str, title_key: str) -> bool:
    """A short Title Case line that could name a publisher ("Iran Press TV", "The Times of
    India"); not a date, not a byline, not the title, no sentence punctuation."""
    if not line or len(line) > 60 or line[-1] in ".!?:;," or loose_key(line) == title_key:
        return False
    words = line.split()
    if not 1 <= len(words) <= 6 or words[0].lower() in ("by", "from", "photo", "image"):
        return False
    if parse_dateline(line) is not None:
        return False
    return all(w[0].isupper() or w[0].isdigit() or w.lower() in _CONNECTORS for w in words)


def strip_page_chrome(text: str, title: str) -> Story:
    """The story alone out of text that may be a whole web page.

    1. Lines matching `LINE_JUNK` are dropped wherever they stand.
    2. If a line equal to the item title (compared with `fold`) is among the first
       `HEAD_WINDOW` lines and every line above it is short (a page header, not story), the
       lines above it and the title line go. Right below the title, a date-only line is the
       dateline and a short Title Case line is the publisher candidate; both go.
       A candidate is taken as the publisher only when it is corroborated: it stands both above
       and below the title (the seed page: "Iran Press TV" twice), or next to the dateline.
       A lone short line above a title is as often a section name ("World") as a publisher.
    3. Lines matching `LEADING_BOILERPLATE` are dropped from the start and lines matching
       `TRAILING_BOILERPLATE` from the end ("... JOIN NOW", "Join the mailing list",
       "Continue reading...").
    """
    if not text:
        return Story("")
    lines = [ln for ln in text.split("\n") if ln and not _LINE_JUNK_RE.fullmatch(ln)]
    publisher: str | None = None
    dateline: dt.datetime | None = None
    title_key = ""  # loose_key(title), the costly part of this function: once a line needs it
    at = -1
    if title:
        for i, line in enumerate(lines[:HEAD_WINDOW]):
            if len(line) > HEADER_LINE_MAX:
                break
            if abs(len(line) - len(title)) <= len(title) // 4 + 4:  # cheap test first
                title_key = title_key or loose_key(title)
                if title_key and loose_key(line) == title_key:
                    at = i
                    break
    if at >= 0:
        above = lines[at - 1] if at > 0 else ""
        above_ok = _publisherish(above, title_key)
        j = at + 1
        below: str | None = None
        while j < len(lines) and j <= at + 3:
            line = lines[j]
            if dateline is None and (when := parse_dateline(line)) is not None:
                dateline = when
            elif below is None and _publisherish(line, title_key):
                below = line
            else:
                break
            j += 1
        if below is not None and (
            dateline is not None or (above_ok and loose_key(above) == loose_key(below))
        ):
            publisher = below
        elif above_ok and dateline is not None:
            publisher = above
        elif below is not None:
            j = at + 1  # an uncorroborated short line below the title stays: it may be story
        lines = lines[j:]
    elif lines and (when := parse_dateline(lines[0])) is not None:
        dateline = when
        lines = lines[1:]
    while lines and _LEADING_RE.fullmatch(lines[0]):
        lines.pop(0)
    while lines and _TRAILING_RE.fullmatch(lines[-1]):
        lines.pop()
    return Story("\n".join(lines), publisher, dateline)
