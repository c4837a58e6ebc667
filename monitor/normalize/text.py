"""HTML and feed text to plain text, and the limits every text field is cut to."""

from __future__ import annotations

import datetime as dt
import html as htmllib
import re
import unicodedata

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
MAX_TAGS = 10_000  # tags of one HTML field


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
# Any whitespace but a newline (NBSP, tabs, \r, ...), where it is not already one space: a
# pattern that matched every single space would rewrite most of the text, space by space
# (4 times slower on a typical story).
_HSPACE = re.compile(r"[^\S\n]{2,}|[^\S \n]")
_NEWLINES = re.compile(r" \n[ \n]*|\n[ \n]+")  # a newline with spaces or newlines around
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


def cut_html(html: str, chars: int, tags: int) -> str:
    """HTML cut at `chars` characters, then before its tag number `tags` + 1 (a C-speed
    count and find: parsers' cost grows with the tree, and a hostile page can nest deep)."""
    html = html[:chars]
    if html.count("<") > tags:
        cut = -1
        for _ in range(tags):
            cut = html.find("<", cut + 1)
        html = html[:cut]
    return html


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
    # lexbor is quadratic in nested block elements (80,000 nested <div>: 12 s): a field is
    # cut after MAX_TAGS tags, more than any story has
    html = cut_html(html, MAX_HTML, MAX_TAGS)
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
    text = " ".join(text.split()).replace(_BREAK, "\n")  # (split: 4 times the regex's speed)
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


def strip_accents(text: str) -> str:
    """Accents removed (NFKD, combining marks dropped): Zürich -> Zurich."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def loose_key(text: str) -> str:
    """A comparison key for short lines (a title, a publisher, a month name): casefolded,
    accents and punctuation ignored, spaces collapsed. Not the matcher's fold (rules/text.py),
    which must keep every character's offset for snippets."""
    return " ".join(re.sub(r"[^\w\s]", " ", strip_accents(text.casefold())).split())
