"""The dates feedparser does not read: epoch seconds, non-English RFC 822, datelines."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
import warnings

from dateutil import parser as dateparser
from dateutil import tz as dateutil_tz

from monitor.normalize.text import loose_key

UTC = dt.UTC

# --- dates -------------------------------------------------------------------------------
# Month names feedparser does not know (it reads English RFC 822 and ISO 8601). Keys are
# accent-stripped lower-case prefixes as they appear in real non-English feeds.
FOREIGN_MONTHS: dict[str, str] = {
    # Portuguese
    "fev": "Feb",
    "abr": "Apr",
    "mai": "May",
    "ago": "Aug",
    "set": "Sep",
    "out": "Oct",
    "dez": "Dec",
    # Spanish
    "ene": "Jan",
    "dic": "Dec",
    # French
    "janv": "Jan",
    "fevr": "Feb",
    "mars": "Mar",
    "avr": "Apr",
    "juin": "Jun",
    "juil": "Jul",
    "aout": "Aug",
    "sept": "Sep",
    "dec": "Dec",
    # German
    "mar": "Mar",
    "mrz": "Mar",
    "okt": "Oct",
    # Italian
    "gen": "Jan",
    "mag": "May",
    "giu": "Jun",
    "lug": "Jul",
    "ott": "Oct",
}
# Time zone abbreviations understood in datelines and loose dates (dateutil knows none).
TZ_ABBREVIATIONS: dict[str, int] = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "UT": 0,
    "WET": 0,
    "BST": 3600,
    "CET": 3600,
    "CEST": 7200,
    "EET": 7200,
    "EEST": 10800,
    "MSK": 10800,
    "IRST": 12600,
    "PKT": 18000,
    "ICT": 25200,
    "SGT": 28800,
    "HKT": 28800,
    "JST": 32400,
    "KST": 32400,
    "AEST": 36000,
    "AEDT": 39600,
    "EST": -18000,
    "EDT": -14400,
    "CST": -21600,
    "CDT": -18000,
    "MST": -25200,
    "MDT": -21600,
    "PST": -28800,
    "PDT": -25200,
}
_TZINFOS = {name: dateutil_tz.tzoffset(name, off) for name, off in TZ_ABBREVIATIONS.items()}

_DEFAULT = dt.datetime(2000, 1, 1)
_EPOCH = re.compile(r"\d{9,13}(\.\d+)?")
_LEADING_WEEKDAY = re.compile(r"^\s*[^\W\d]{2,12}\.?,\s*")
_WORD = re.compile(r"[^\W\d_]+")


def _to_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        return value.replace(tzinfo=UTC)  # no zone given: read as UTC (documented policy)
    return value.astimezone(UTC)


def _dateutil(text: str) -> dt.datetime | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # default: a fixed date, so that a missing field never comes from today
            return _to_utc(dateparser.parse(text, default=_DEFAULT, tzinfos=_TZINFOS))
    except (ValueError, ArithmeticError, TypeError, dateparser.ParserError):
        # ArithmeticError: OverflowError, and decimal's InvalidOperation, which dateutil
        # raises on a minute of 29 digits ("01:0333...3:00", found by the fuzz test)
        return None


# The zone names feedparser's RFC 822 reader knows (RFC 822 5.1). Any other name it silently
# reads as UTC: "18:01 CEST" would be 18:01 UTC, two hours off.
RFC822_ZONES = frozenset(
    {"UT", "UTC", "GMT", "Z", "EST", "EDT", "CST", "CDT", "MST", "MDT", "PST", "PDT"}
)
_TRAILING_ZONE = re.compile(r"\d:\d\d(?::\d\d)?(?:\.\d+)?\s*([A-Z]{2,5})\s*$")


def zone_name(raw: str) -> str | None:
    """The zone abbreviation a date string ends with ("… 18:01 CEST" -> "CEST"), if any."""
    m = _TRAILING_ZONE.search(raw.strip())
    return m.group(1) if m else None


def parse_zoned(raw: str) -> dt.datetime | None:
    """A date written with a zone abbreviation: read with TZ_ABBREVIATIONS; None when the
    zone is not one of them (ambiguous, like IST, or unknown): an unknown zone makes the
    date unknown rather than hours off."""
    zone = zone_name(raw)
    if zone is None or zone not in TZ_ABBREVIATIONS:
        return None
    return _dateutil(_LEADING_WEEKDAY.sub("", raw.strip()))


def parse_loose_date(raw: str | None) -> dt.datetime | None:
    """A date string feedparser could not read: epoch seconds (or ms), or RFC 822 with
    non-English day and month names ("Seg, 24 Set 2018 19:42:40 -0300"). Aware UTC or None."""
    if not raw:
        return None
    raw = raw.strip()[:100]
    if _EPOCH.fullmatch(raw):
        seconds = float(raw)
        if seconds > 1e11:  # milliseconds
            seconds /= 1000
        try:
            return dt.datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    text = _LEADING_WEEKDAY.sub("", raw)

    def english_month(m: re.Match[str]) -> str:
        word = m.group(0)
        key = loose_key(word)
        if len(key) <= 10:  # month names; not some longer word that starts like one
            for n in (5, 4, 3):
                if key[:n] in FOREIGN_MONTHS:
                    return FOREIGN_MONTHS[key[:n]]
        return word

    text = _WORD.sub(english_month, text)
    try:
        return _to_utc(email.utils.parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError, OverflowError):  # a year of 11 digits: overflow
        pass
    if not re.search(r"\b(19|20)\d\d\b", text):
        return None  # dateutil would invent the year
    return _dateutil(text)


# A line that is a date and nothing else. Every word in it must be one of these.
_DATE_WORDS = frozenset(
    re.findall(
        r"\w+",
        """jan january feb february mar march apr april may jun june jul july aug august sep sept
        september oct october nov november dec december mon monday tue tues tuesday wed
        wednesday thu thur thurs thursday fri friday sat saturday sun sunday am pm a m p
        at on of the t z updated published posted last modified""",
    )
    + [k.lower() for k in TZ_ABBREVIATIONS]
)
_HAS_MONTH = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b\.?", re.I)
_NUMERIC_DATE = re.compile(r"\b\d{4}-\d{1,2}-\d{1,2}|\b\d{1,2}[/.]\d{1,2}[/.]\d{4}\b")
_DATELINE_PREFIX = re.compile(
    r"^\s*(last\s+)?(updated|published|posted|modified)(\s+on|\s+at)?\s*:?\s*", re.I
)


def parse_dateline(line: str) -> dt.datetime | None:
    """The date of a line that holds a date and nothing else ("Tue Jun 18, 2019 04:01PM",
    "Published: 18 June 2019 16:01 GMT"), as aware UTC (no zone given: read as UTC), else None.
    A year (19xx/20xx) is required, so that no year is ever guessed."""
    line = line.strip()
    if not line or len(line) > 64 or not re.search(r"\b(19|20)\d\d\b", line):
        return None
    words = [w.lower() for w in _WORD.findall(line)]
    if any(w not in _DATE_WORDS for w in words):
        return None
    if not (_HAS_MONTH.search(line) or _NUMERIC_DATE.search(line)):
        return None  # a bare year or time is not a date
    return _dateutil(_DATELINE_PREFIX.sub("", line))


# A date before 1990 or more than 2 days ahead of the fetch is absurd and counts as missing
# (feeds' dates in parse.py, pages' in extract.py).
MIN_DATE = dt.datetime(1990, 1, 1, tzinfo=dt.UTC)
MAX_FUTURE = dt.timedelta(days=2)
