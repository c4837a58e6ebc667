"""Text, URL and date normalization for feed entries (pure functions, no I/O).

`parse` calls these on every entry; they are kept apart so that the policy (which tracking
parameters go, which lines are boilerplate, which strings are dates) reads as data.

    text.py     html_to_text, plain_to_text, one_line, loose_key, the field limits
    urls.py     canonical_url and the tracking parameters
    dates.py    parse_loose_date, parse_dateline, month names and zone abbreviations
    chrome.py   strip_page_chrome and the boilerplate patterns

- `html_to_text`: HTML -> plain text, one line per block (paragraph, list item, heading,
  `<br>`), entities decoded, `<script>`/`<style>` and other non-text elements dropped. Built on
  selectolax's lexbor (an HTML5 parser in C) with a fast path for text without `<` or `&`.
- `canonical_url`: absolute http(s), lower-case scheme and host, no fragment, no tracking
  parameters (`TRACKING_PARAMS`, `TRACKING_PREFIXES`), redirect wrappers unwrapped
  (google.com/url, Google News article links).
- `strip_page_chrome`: page text -> the story alone, with the publisher and dateline found
  around the title (see its docstring), using the `LINE_JUNK`, `LEADING_BOILERPLATE` and
  `TRAILING_BOILERPLATE` patterns.
- `parse_loose_date`, `parse_dateline`: the dates feedparser does not understand.
"""

from monitor.normalize.chrome import Story, strip_page_chrome
from monitor.normalize.dates import (
    MAX_FUTURE,
    MIN_DATE,
    RFC822_ZONES,
    TZ_ABBREVIATIONS,
    parse_dateline,
    parse_loose_date,
    parse_zoned,
    zone_name,
)
from monitor.normalize.text import (
    MAX_CATEGORIES,
    MAX_HTML,
    MAX_SHORT,
    MAX_TEXT,
    MAX_TITLE,
    MAX_URL,
    cut_html,
    html_to_text,
    loose_key,
    one_line,
    plain_to_text,
    strip_accents,
    tidy,
)
from monitor.normalize.urls import (
    TRACKING_PAIRS,
    TRACKING_PARAMS,
    TRACKING_PREFIXES,
    canonical_url,
)

__all__ = [
    "MAX_CATEGORIES",
    "MAX_FUTURE",
    "MAX_HTML",
    "MAX_SHORT",
    "MAX_TEXT",
    "MAX_TITLE",
    "MAX_URL",
    "MIN_DATE",
    "RFC822_ZONES",
    "TRACKING_PAIRS",
    "TRACKING_PARAMS",
    "TRACKING_PREFIXES",
    "TZ_ABBREVIATIONS",
    "Story",
    "canonical_url",
    "cut_html",
    "html_to_text",
    "loose_key",
    "one_line",
    "parse_dateline",
    "parse_loose_date",
    "parse_zoned",
    "plain_to_text",
    "strip_accents",
    "strip_page_chrome",
    "tidy",
    "zone_name",
]
