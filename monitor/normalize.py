"""Text, URL and date normalization for feed entries (pure functions, no I/O).

`parse` calls these on every entry; they are kept apart so that the policy (which tracking
parameters go, which lines are boilerplate, which strings are dates) reads as data.

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

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import html as htmllib
import re
import unicodedata
import warnings
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit, urlunsplit

from dateutil import parser as dateparser
from dateutil import tz as dateutil_tz
from selectolax.lexbor import LexborHTMLParser

UTC = dt.UTC

# --- limits ------------------------------------------------------------------------------
# A hostile or broken feed must not make one item unbounded: every text field is cut to these
# many characters (after conversion), and HTML is cut before it is parsed at all.
MAX_TEXT = 100_000
MAX_HTML = 1_000_000
MAX_TITLE = 1_000
MAX_SHORT = 300  # author, source, one category
MAX_CATEGORIES = 50
MAX_URL = 2_000

# --- URLs --------------------------------------------------------------------------------
# Query parameters that only say where a click came from. Removed from canonical URLs so that
# the same story reached through different feeds or campaigns is one URL (cross-feed dedup).
# Matched case-insensitively on the parameter name.
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        # Google Analytics / Ads, Facebook, Microsoft, Mailchimp, HubSpot, Marketo
        "gclid",
        "gclsrc",
        "dclid",
        "gbraid",
        "wbraid",
        "fbclid",
        "msclkid",
        "yclid",
        "twclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_hsenc",
        "_hsmi",
        "mkt_tok",
        "_ga",
        "_gl",
        # AT Internet (BBC and others)
        "at_medium",
        "at_campaign",
        "at_custom1",
        "at_custom2",
        "at_custom3",
        "at_custom4",
        "at_link",
        "at_link_id",
        "at_link_origin",
        "at_link_type",
        "at_format",
        "at_bbc_team",
        "at_ptr_name",
        # publishers' own campaign tags seen in real feeds
        "ocid",  # MSN
        "cmpid",  # many CMSs
        "wt_mc",  # heise
        "wt.mc_id",
        "wt_zmc",
        "xtor",  # Le Monde and other AT/XiTi users
        "maca",  # Deutsche Welle
        "traffic_source",  # Al Jazeera
        "feedtype",  # Reuters (feedType=RSS&feedName=worldNews)
        "feedname",
        "emc",  # New York Times (emc=rss&partner=rss)
        "smid",
        "smtyp",
        "cid",
        "ito",  # Financial Times style
        "rss",  # ?rss=1 (Science)
        "ref_src",
        "rss_id",
        "src",
        "ns_campaign",
        "ns_mchannel",
        "ns_source",
        "ns_linkname",
        "ns_fee",
    }
)
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "pk_", "mtm_", "hsa_", "oly_")
# A parameter removed only with this exact value (the name alone is too common to drop).
TRACKING_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("partner", "rss"), ("ref", "rss"), ("from", "rss"), ("source", "rss"), ("oc", "5")}
)

_GOOGLE_HOSTS = frozenset({"google.com", "www.google.com", "news.google.com"})


def _is_tracking(name: str, value: str) -> bool:
    key = unquote(name).strip().lower()
    if key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES):
        return True
    return (key, unquote(value).strip().lower()) in TRACKING_PAIRS


def _unwrap_google(parts: tuple[str, str, str, str, str]) -> str | None:
    """The publisher URL inside a Google redirect, or None when it is not one we can read.

    - `https://www.google.com/url?...&url=https://publisher/...` (Google Alerts): the `url` (or
      `q`) parameter.
    - `https://news.google.com/[__i/rss/rd/]articles/CBMi...` (Google News RSS): the token is a
      base64url protobuf whose field 4 is the article URL (the older, unencrypted format; newer
      tokens are opaque and the Google URL is kept).
    """
    _scheme, host, path, query, _frag = parts
    if host not in _GOOGLE_HOSTS:
        return None
    if path == "/url":
        params = dict(parse_qsl(query))
        target = params.get("url") or params.get("q")
        if target and target.startswith(("http://", "https://")):
            return target
        return None
    if host == "news.google.com" and "/articles/" in path:
        token = path.rsplit("/articles/", 1)[1].split("/", 1)[0]
        return _google_news_token(token)
    return None


def _google_news_token(token: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    # 0x08 <varint>  (field 1) then 0x22 <varint length> <url>  (field 4, bytes)
    if len(raw) < 4 or raw[0] != 0x08:
        return None
    i = 2
    while i < len(raw) and raw[i - 1] & 0x80:  # skip the rest of field 1's varint
        i += 1
    if i >= len(raw) or raw[i] != 0x22:
        return None
    i += 1
    length = shift = 0
    while i < len(raw):
        byte = raw[i]
        i += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    url_bytes = raw[i : i + length]
    if len(url_bytes) != length:
        return None
    try:
        url = url_bytes.decode("ascii")
    except UnicodeDecodeError:
        return None
    if url.startswith(("http://", "https://")) and url.isprintable() and " " not in url:
        return url
    return None


def canonical_url(url: str | None, base: str | None) -> str | None:
    """The URL analysts should open and dedup should compare, or None if there is none.

    Absolute against `base`; only http and https (anything else, e.g. `javascript:` or
    `mailto:`, gives None); scheme and host lower-cased, default port and fragment removed;
    tracking parameters removed (the others keep their order and their exact encoding);
    Google redirect wrappers replaced by the URL they point to.
    """
    if not url:
        return None
    url = url.strip()
    if not url or len(url) > MAX_URL * 4:
        return None
    if base and not urlsplit(url).scheme:
        try:
            url = urljoin(base, url)
        except ValueError:
            return None
    for _ in range(3):  # a redirect may wrap another one; bounded
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return None
        host = parts.hostname.rstrip(".")
        inner = _unwrap_google((scheme, host, parts.path, parts.query, parts.fragment))
        if inner is None:
            break
        url = inner
    netloc = host
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.username or parts.password:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc = f"{netloc}:{port}"
    query = "&".join(
        piece
        for piece in parts.query.split("&")
        if piece and not _is_tracking(*piece.partition("=")[::2])
    )
    path = parts.path or "/"
    result = urlunsplit((scheme, netloc, path, query, ""))
    return result if len(result) <= MAX_URL else None


# --- HTML to text ------------------------------------------------------------------------
# Elements whose text is not part of the story.
_DROP_SELECTOR = ",".join(
    (
        "script",
        "style",
        "noscript",
        "template",
        "iframe",
        "object",
        "embed",
        "svg",
        "math",
        "canvas",
        "head",
        "select",
        "button",
        "input",
        "textarea",
    )
)
# Elements that start a new line (the HTML block-level and line-breaking elements).
_BLOCK_SELECTOR = ",".join(
    (
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "caption",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    )
)
_BREAK = "\ue000"  # a private-use character marks the line breaks of block elements
_ANY_SPACE = re.compile(r"\s+")
_HSPACE = re.compile(r"[^\S\n]+")  # any whitespace but a newline (NBSP, tabs, \r, ...)
_NEWLINES = re.compile(r" ?\n[ \n]*")
# Invisible characters with no meaning in plain text (ZWJ/ZWNJ are kept: scripts need them),
# and C0/C1 controls other than tab/newline.
_INVISIBLE = re.compile(r"[\u200b\u2060\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TAG_LIKE = re.compile(r"</?[a-zA-Z][^<>]*>|<!--")
_ENTITY_LIKE = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]{1,31});")


def tidy(text: str) -> str:
    """Collapse runs of spaces, one line per paragraph, no blank lines, no invisible chars."""
    text = _INVISIBLE.sub("", text)
    text = _HSPACE.sub(" ", text)
    return _NEWLINES.sub("\n", text).strip()


def html_to_text(html: str) -> str:
    """Plain text of an HTML fragment or page: entities decoded, one line per block element.

    Newlines in the HTML source are spaces, as in a browser (`<pre>` included, a known
    simplification). Text without `<` takes a fast path: no markup, so its newlines are the only
    structure there is and they are kept as line breaks. Script, style and form
    elements are dropped with their text. The input is cut at `MAX_HTML` characters before
    parsing and the output at `MAX_TEXT`.
    """
    if not html:
        return ""
    if len(html) > MAX_HTML:
        html = html[:MAX_HTML]
    if "<" not in html:
        return tidy(_unescape_leftovers(htmllib.unescape(html)))[:MAX_TEXT]
    if _BREAK in html:
        html = html.replace(_BREAK, "")
    tree = LexborHTMLParser(html)
    for node in tree.css(_DROP_SELECTOR):
        node.decompose()
    for node in tree.css(_BLOCK_SELECTOR):
        node.insert_before(_BREAK)
        node.insert_after(_BREAK)
    root = tree.body
    text = root.text(deep=True, separator="", strip=False) if root is not None else ""
    # In HTML a newline in the source is a space; only the elements above break lines.
    text = _ANY_SPACE.sub(" ", text).replace(_BREAK, "\n")
    return tidy(_unescape_leftovers(text))[:MAX_TEXT]


def _unescape_leftovers(text: str) -> str:
    """Entities still there after decoding were escaped twice by the publisher
    ("Filip&amp;#233;ndula" in a CDATA section): decode them once more. Literal entity text
    in a news story is far rarer than this bug."""
    if "&" in text and _ENTITY_LIKE.search(text):
        return htmllib.unescape(text)
    return text


def plain_to_text(text: str) -> str:
    """Text a feed declared plain: decoded again only if it still carries tags or entities.

    Feeds often escape HTML twice (`&amp;#x27;`, `&lt;b&gt;` in an RSS title): what is left
    after XML decoding that looks like markup is treated as HTML; a bare `<` or `&` in real
    plain text ("AT&T", "x < y") is left alone.
    """
    if not text:
        return ""
    if _TAG_LIKE.search(text):
        return html_to_text(text)
    if "&" in text and _ENTITY_LIKE.search(text):
        text = _unescape_leftovers(htmllib.unescape(text))
    return tidy(text[:MAX_HTML])[:MAX_TEXT]


def one_line(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit]


def fold(text: str) -> str:
    """Comparison key: casefolded, accents and punctuation ignored, spaces collapsed."""
    text = text.casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


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
    except (ValueError, OverflowError, TypeError, dateparser.ParserError):
        return None


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
        key = fold(word)
        if len(key) <= 10:  # month names; not some longer word that starts like one
            for n in (5, 4, 3):
                if key[:n] in FOREIGN_MONTHS:
                    return FOREIGN_MONTHS[key[:n]]
        return word

    text = _WORD.sub(english_month, text)
    try:
        return _to_utc(email.utils.parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError):
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
_LEADING_RE = re.compile("|".join(f"(?:{p})" for p in LEADING_BOILERPLATE), re.I)
_TRAILING_RE = re.compile("|".join(f"(?:{p})" for p in TRAILING_BOILERPLATE), re.I)

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
    if not line or len(line) > 60 or line[-1] in ".!?:;," or fold(line) == title_key:
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
    title_key = fold(title) if title else ""
    at = -1
    if title_key:
        for i, line in enumerate(lines[:HEAD_WINDOW]):
            if len(line) > HEADER_LINE_MAX:
                break
            # cheap length test first: fold() is the costly part of this function
            if abs(len(line) - len(title)) <= len(title) // 4 + 4 and fold(line) == title_key:
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
            dateline is not None or (above_ok and fold(above) == fold(below))
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
