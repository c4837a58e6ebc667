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
_BLOCK_TAGS = (
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
_BLOCK_SELECTOR = ",".join(_BLOCK_TAGS)
_BREAK = "\ue000"  # a private-use character marks the line breaks of block elements

# Fragments whose every tag is one of these (the usual feed summary: <p>, <a>, <br>, <b>,
# <img>), properly nested, read the same without a parser: a block tag, start or end, is a
# line break and an inline one is nothing. Whatever would make the HTML parser build another
# tree than the tags say (an element closed by another's start, as <p> by <div>; a stray or
# misnested end tag; tables, which move text) is left to the parser. A tenth of the cost of
# lexbor's parse and its two CSS queries on a 400-character summary; tests/test_text.py
# compares both ways over generated fragments and every HTML field of the corpus.
# Of the block elements, all but those a parser treats apart: tables (they move text), forms,
# <pre> (a leading newline dropped), <details>/<summary>.
_SIMPLE_BLOCK = frozenset(_BLOCK_TAGS) - {
    "caption", "details", "fieldset", "form", "pre", "summary", "table", "td", "th", "tr",
}  # fmt: skip
_SIMPLE_INLINE = frozenset(
    [
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "big",
        "cite",
        "code",
        "del",
        "dfn",
        "em",
        "font",
        "i",
        "img",
        "ins",
        "kbd",
        "mark",
        "q",
        "s",
        "samp",
        "small",
        "span",
        "strike",
        "strong",
        "sub",
        "sup",
        "time",
        "tt",
        "u",
        "var",
        "wbr",
    ]
)
_VOID = frozenset({"br", "hr", "img", "wbr"})
# A start tag closes an open element of these names (the parser's implied end tags).
_CLOSED_BY = {
    **{name: ("p",) for name in _SIMPLE_BLOCK - {"br"}},
    "li": ("p", "li"),
    "dt": ("p", "dt", "dd"),
    "dd": ("p", "dt", "dd"),
    **{f"h{n}": ("p", "h1", "h2", "h3", "h4", "h5", "h6") for n in range(1, 7)},
    "a": ("a",),
}
# A start or end tag with well-formed attributes (name, name=value, "quoted", 'quoted').
_SIMPLE_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9]*)"
    r"((?:\s+[^\s\"'>/=<]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*)\s*/?>"
)
_INLINE = "\ue001"  # an inline tag's place, so that no entity is read across it
# Any whitespace but a newline (NBSP, tabs, \r, ...), where it is not already one space: a
# pattern that matched every single space would rewrite most of the text, space by space
# (4 times slower on a typical story).
_HSPACE = re.compile(r"[^\S\n]{2,}|[^\S \n]")
# Invisible characters with no meaning in plain text (ZWJ/ZWNJ are kept: scripts need them),
# and C0/C1 controls other than tab/newline.
_INVISIBLE = re.compile(r"[\u200b\u2060\ufeff\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_TAG_LIKE = re.compile(r"</?[a-zA-Z][^<>]*>|<!--")
_ENTITY_LIKE = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]{1,31});")


# Whitespace (str.isspace, what \s matches) other than a space and a newline. Tested.
_ODD_SPACE = re.compile(
    "[\t\x0b\x0c\r\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)


def tidy(text: str) -> str:
    """Collapse runs of spaces, one line per paragraph, no blank lines, no invisible chars."""
    lines = text.split("\n")
    # Printable lines hold no invisible character (each is a control or a format character)
    # and no whitespace but the space (every other is a control or a separator): what is left
    # to do is collapsing spaces. One C-speed test a line instead of two regex scans of the
    # text (a feed's summary: 4.8 -> 1.9 us). _tidy_any is the general case; a test holds
    # the two equal.
    if all(map(str.isprintable, lines)):
        if "  " in text:
            return "\n".join(line for part in lines if (line := " ".join(part.split())))
        return "\n".join(line for part in lines if (line := part.strip(" ")))
    return _tidy_any(text)


def _tidy_any(text: str) -> str:
    text = _INVISIBLE.sub("", text)
    # Each pattern runs only where it would match (most text has neither): C-speed finds
    # instead of a per-character test of a whitespace class (6 of 9 us on a summary).
    if "  " in text or _ODD_SPACE.search(text):
        text = _HSPACE.sub(" ", text)
    # Now every space is single: a line is what lies between newlines, stripped; blank ones go
    # (the split and join cost a sixth of a regex over the newlines).
    return "\n".join(line for part in text.split("\n") if (line := part.strip()))


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
    text = _simple_text(html)
    if text is None:
        text = _parsed_text(html)
    return tidy(_unescape_leftovers(_lines(text)))[:MAX_TEXT]


def _lines(text: str) -> str:
    """Text with its line breaks as _BREAK, as lines: in HTML a newline in the source is a
    space; only the block elements break lines."""
    blocks = text.split(_BREAK)
    if "  " not in text and all(map(str.isprintable, blocks)):
        # no whitespace but single spaces (see tidy): nothing to collapse; the spaces at the
        # ends of the blocks are tidy's to strip (a summary: 3.7 -> 0.9 us)
        return "\n".join(blocks).strip(" ")
    return " ".join(text.split()).replace(_BREAK, "\n")  # (split: 4 times the regex's speed)


def _simple_text(html: str) -> str | None:
    """The text of a fragment made only of simple, nested tags (above), line breaks as
    _BREAK; None for any other fragment."""
    if _INLINE in html or "\x00" in html:
        return None
    opened: list[str] = []
    simple = True

    def mark(m: re.Match[str]) -> str:
        nonlocal simple
        name = m.group(2).lower()
        if m.group(1):  # an end tag: of the element open last (</br> is a <br>)
            if name == "br":
                return _BREAK
            if not opened or opened[-1] != name:
                simple = False
            else:
                opened.pop()
        elif name not in _SIMPLE_BLOCK and name not in _SIMPLE_INLINE:
            simple = False
        elif name not in _VOID:
            if any(open_ in opened for open_ in _CLOSED_BY.get(name, ())):
                simple = False
            opened.append(name)
        return _BREAK if name in _SIMPLE_BLOCK else _INLINE

    marked = _SIMPLE_TAG.sub(mark, html)
    if not simple or "<" in marked:  # another element, a comment, a bare "<": the parser's
        return None
    if "&#" in marked and any(_odd_reference(m) for m in _NUMERIC_REF.finditer(marked)):
        return None
    return htmllib.unescape(marked).replace(_INLINE, "")


_NUMERIC_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}))")


def _odd_reference(m: re.Match[str]) -> bool:
    """A reference to a control character or a noncharacter: html.unescape drops it where an
    HTML parser keeps the character (`&#11;`, `&#xFFFE;`)."""
    cp = int(m.group(1), 16) if m.group(1) else int(m.group(2))
    return (
        0x01 <= cp <= 0x08
        or cp == 0x0B
        or 0x0E <= cp <= 0x1F
        or cp == 0x7F
        or 0xFDD0 <= cp <= 0xFDEF
        or (cp & 0xFFFE == 0xFFFE and cp <= 0x10FFFF)
    )


def _parsed_text(html: str) -> str:
    tree = LexborHTMLParser(html)
    for node in tree.css(_DROP_SELECTOR):
        node.decompose()
    for node in tree.css(_BLOCK_SELECTOR):
        node.insert_before(_BREAK)
        node.insert_after(_BREAK)
    root = tree.body
    return root.text(deep=True, separator="", strip=False) if root is not None else ""


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
    if "<" not in text and "&" not in text and text.isprintable():
        # No markup, no entity, no invisible character, no whitespace but spaces (see tidy):
        # tidy's result without its scans (a title: 3.5 -> 1 us).
        return " ".join(text[:MAX_HTML].split())[:MAX_TEXT]
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
