"""OPML in and out, as feed entries for monitor.yaml.

Reading: the file is parsed by expat through defusedxml's SAX reader, which refuses entity
declarations and external references (billion laughs, quadratic blowup, `SYSTEM "file:…"`)
before anything is expanded or fetched. SAX also gives the line and column of every outline,
so each problem and each skipped outline is reported as `FILE:LINE:COL`.

Mapping: an outline with `xmlUrl` is a feed; an outline without one is a folder, and every
folder above a feed (and each part of its OPML 2.0 `category`) becomes a slugified tag. The id
is the slug of the outline's `text` (else `title`, else the URL's host), made unique against
the configuration and the rest of the file with `-2`, `-3`… Only http(s) URLs are taken; a URL
already in the configuration is skipped, and a URL twice in the file is one feed with the
tags of both places.

Writing: `append_to_config` adds the entries to the `feeds:` list through ruamel.yaml's
round trip, refuses to go on if that would change any existing line, validates the result
with the caller's checker and only then replaces the file (temporary file + os.replace).

Pure apart from reading and writing the files it is given; the caller passes plain values.
"""

from __future__ import annotations

import copy
import difflib
import io
import os
import re
import stat
import tempfile
import unicodedata
import xml.etree.ElementTree as ET
import xml.sax
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl, Locator

from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.sax import make_parser
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from monitor.errors import ConfigError

MAX_BYTES = 20_000_000
"""Larger than any real subscription list (10,000 feeds is about 2 MB)."""

ID_LENGTH = 64
NAME_LENGTH = 100


@dataclass(frozen=True)
class Outline:
    """One outline with an xmlUrl, as found in the file."""

    where: str  # FILE:LINE:COL
    line: int
    name: str  # text, else title ("" when neither)
    title: str  # title, when the outline has one besides its text ("" else)
    url: str
    folders: tuple[str, ...]  # names of the enclosing folder outlines, outermost first
    categories: tuple[str, ...]  # the parts of its `category` attribute


@dataclass(frozen=True)
class Note:
    """An outline that was skipped or merged, and why."""

    where: str
    line: int
    name: str
    reason: str
    skipped: bool = True  # False: merged into another entry

    def __str__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        return f"{self.where}:{name} {self.reason}"


@dataclass
class Document:
    outlines: list[Outline] = field(default_factory=list)
    skipped: list[Note] = field(default_factory=list)


@dataclass
class NewFeed:
    id: str
    url: str
    tags: list[str]
    name: str
    where: str


@dataclass
class Plan:
    feeds: list[NewFeed]
    notes: list[Note]


# ---------------------------------------------------------------------------------------------
# Reading


def read_opml(path: Path) -> Document:
    """Parse an OPML file; ConfigError `FILE:LINE:COL: message` when it is not one."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{path}:1:1: {size:,} bytes: larger than any OPML file should be")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}:1:1: cannot read: {exc.strerror}") from None
    handler = _Handler(str(path))
    parser = make_parser()  # forbid_entities=True, forbid_external=True
    parser.setContentHandler(handler)
    try:
        parser.parse(io.BytesIO(data))
    except xml.sax.SAXParseException as exc:
        where = f"{path}:{exc.getLineNumber() or 1}:{(exc.getColumnNumber() or 0) + 1}"
        raise ConfigError(f"{where}: not well-formed XML: {exc.getMessage()}") from None
    except (EntitiesForbidden, ExternalReferenceForbidden) as exc:
        what = "entity declaration" if isinstance(exc, EntitiesForbidden) else "external reference"
        raise ConfigError(
            f"{handler.where()}: {what} refused: OPML needs none, and they are how XML bombs "
            "and file-reading attacks work"
        ) from None
    except DefusedXmlException as exc:
        raise ConfigError(f"{handler.where()}: refused: {type(exc).__name__}") from None
    except _NotOpml as exc:
        raise ConfigError(str(exc)) from None
    if not handler.seen_body:
        raise ConfigError(f"{path}:1:1: not an OPML file: no <body> in <opml>")
    return handler.document


class _NotOpml(Exception):
    pass


@dataclass
class _Frame:
    where: str
    line: int
    name: str
    is_feed: bool
    children: int = 0


class _Handler(ContentHandler):
    """Collects outlines with their folders; element names compared without case, since
    hand-made OPML files are not always careful."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.document = Document()
        self.locator: Locator | None = None
        self.depth = 0
        self.in_body = False
        self.seen_body = False
        self.stack: list[_Frame] = []

    def setDocumentLocator(self, locator: Locator) -> None:
        self.locator = locator

    def where(self) -> str:
        line, col = self.position()
        return f"{self.path}:{line}:{col}"

    def position(self) -> tuple[int, int]:
        """1-based line and column of the event being handled."""
        if self.locator is None:
            return 1, 1
        return self.locator.getLineNumber() or 1, (self.locator.getColumnNumber() or 0) + 1

    def startElement(self, name: str, attrs: AttributesImpl) -> None:
        tag = name.rpartition(":")[2].lower()
        self.depth += 1
        if self.depth == 1:
            if tag != "opml":
                raise _NotOpml(f"{self.where()}: not an OPML file: the root element is <{name}>")
            return
        if self.depth == 2 and tag == "body":
            self.in_body = self.seen_body = True
            return
        if not self.in_body or tag != "outline":
            return
        a = {k.lower(): v for k, v in attrs.items()}
        where, line = self.where(), self.position()[0]
        text, title = _clean(a.get("text", "")), _clean(a.get("title", ""))
        label = text or title
        if self.stack:
            self.stack[-1].children += 1
        url = a.get("xmlurl")
        if url is None:
            self.stack.append(_Frame(where, line, label, is_feed=False))
            return
        self.stack.append(_Frame(where, line, label, is_feed=True))
        folders = tuple(f.name for f in self.stack[:-1] if not f.is_feed and f.name)
        categories = tuple(
            part
            for category in a.get("category", "").split(",")
            for part in category.split("/")
            if part.strip()
        )
        other = title if title != label else ""
        self.document.outlines.append(
            Outline(where, line, label, other, url.strip(), folders, categories)
        )

    def endElement(self, name: str) -> None:
        tag = name.rpartition(":")[2].lower()
        if self.depth == 2 and tag == "body":
            self.in_body = False
        elif self.in_body and tag == "outline" and self.stack:
            frame = self.stack.pop()
            if not frame.is_feed and frame.children == 0:
                self.document.skipped.append(
                    Note(frame.where, frame.line, frame.name, "skipped: no xmlUrl (not a feed)")
                )
        self.depth -= 1


def _clean(text: str) -> str:
    """A name from the file as one printable line: no control or line-separator characters
    (it ends up in YAML comments and messages), whitespace collapsed, length capped."""
    printable = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(printable.split())[:NAME_LENGTH]


# ---------------------------------------------------------------------------------------------
# Planning: ids, tags, duplicates


def slug_id(text: str) -> str:
    """An id for monitor.yaml: ASCII letters (accents dropped, lower case), digits, `_`, `.`
    and `-`; starts and ends with a letter or digit; at most 64 characters. "" when nothing
    of the text survives (a name in another script: the caller falls back on the URL)."""
    folded = _fold(text).encode("ascii", "ignore").decode()
    folded = re.sub(r"\b([a-z0-9])\.", r"\1", folded)  # initials: "U.S." -> "us"
    s = re.sub(r"[^a-z0-9_.]+", "-", folded)
    s = re.sub(r"([-_.])[-_.]+", r"\1", s).strip("-_.")
    return s[:ID_LENGTH].rstrip("-_.")


def slug_tag(text: str) -> str:
    """A tag: lower case, accents dropped, words joined by `-`; letters of any script kept
    ("Wire services" -> "wire-services", "Новости" -> "новости")."""
    s = re.sub(r"[\W_]+", "-", _fold(text)).strip("-")
    return s[:ID_LENGTH].rstrip("-")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def url_key(url: str) -> str:
    """What makes two feed URLs the same feed: scheme, host case and default port ignored."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port in (80, 443):
        port = None
    netloc = host if port is None else f"{host}:{port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{netloc}{parts.path or '/'}{query}"


def _bad_url(url: str) -> str | None:
    """Why this URL cannot be a feed of ours, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return "not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        shown = url if len(url) <= 60 else url[:57] + "..."
        return f"not an http(s) URL ({shown})"
    if not parts.hostname:
        return "no host in the URL"
    if any(not ch.isprintable() or ch.isspace() for ch in url):
        return "spaces or control characters in the URL"
    if "${" in url:
        # monitor.yaml expands ${VAR} from the environment: such a URL could carry a secret
        # to whoever serves the feed.
        return "the URL contains ${, which monitor.yaml would expand from the environment"
    return None


def plan_import(
    doc: Document,
    existing: Iterable[tuple[str, str]],
    extra_tags: Sequence[str] = (),
) -> Plan:
    """The new feed entries for a parsed OPML file. `existing`: (id, url) of the feeds already
    configured; their ids are not reused and their URLs are not added again. Tags: the
    folders' and categories' slugs, then `extra_tags` as given."""
    used_ids: set[str] = set()
    known: dict[str, str] = {}
    for fid, url in existing:
        used_ids.add(fid.casefold())
        known.setdefault(url_key(url), fid)
    notes = list(doc.skipped)
    feeds: list[NewFeed] = []
    new_by_key: dict[str, NewFeed] = {}
    for o in doc.outlines:
        reason = _bad_url(o.url)
        if reason is not None:
            notes.append(Note(o.where, o.line, o.name, f"skipped: {reason}"))
            continue
        tags = _unique(slug_tag(t) for t in (*o.folders, *o.categories))
        key = url_key(o.url)
        if key in known:
            reason = f"skipped: already configured as feed {known[key]}"
            notes.append(Note(o.where, o.line, o.name, reason))
        elif key in new_by_key:
            first = new_by_key[key]
            first.tags = _unique([*first.tags, *tags])
            reason = f"same URL as {first.where} (feed {first.id}): tags merged"
            notes.append(Note(o.where, o.line, o.name, reason, skipped=False))
        else:
            fid = _new_id(o, used_ids)
            used_ids.add(fid.casefold())
            feed = NewFeed(fid, o.url, tags, o.name, o.where)
            feeds.append(feed)
            new_by_key[key] = feed
    for feed in feeds:
        feed.tags = _unique([*feed.tags, *(t.strip() for t in extra_tags)])
    notes.sort(key=lambda n: n.line)
    return Plan(feeds, notes)


def _new_id(o: Outline, used: set[str]) -> str:
    """The slug of the outline's text; when taken, of its title; then numbered (`-2`…)."""
    candidates = [c for c in (slug_id(o.name), slug_id(o.title)) if c]
    for candidate in candidates:
        if candidate.casefold() not in used:
            return candidate
    return _unique_id(candidates[0] if candidates else _id_from_url(o.url), used)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _id_from_url(url: str) -> str:
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    return slug_id(host) or "feed"


def _unique_id(base: str, used: set[str]) -> str:
    if base.casefold() not in used:
        return base
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[: ID_LENGTH - len(suffix)].rstrip("-_.") + suffix
        if candidate.casefold() not in used:
            return candidate
        n += 1


# ---------------------------------------------------------------------------------------------
# YAML out


def _entry(feed: NewFeed) -> CommentedMap:
    m = CommentedMap()
    m["id"] = feed.id
    m["url"] = feed.url
    if feed.tags:
        tags = CommentedSeq(feed.tags)
        tags.fa.set_flow_style()
        m["tags"] = tags
    if feed.name and slug_id(feed.name) != feed.id:
        m.yaml_add_eol_comment(feed.name, key="id")  # the name the OPML gave it
    return m


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096  # never fold a long line the file had on one line
    y.indent(mapping=2, sequence=4, offset=2)  # the layout of the SPEC's example
    return y


def render_feeds(feeds: Sequence[NewFeed]) -> str:
    """`feeds:` and the entries, as YAML that can be pasted into monitor.yaml."""
    buf = io.StringIO()
    _yaml().dump(CommentedMap(feeds=CommentedSeq(_entry(f) for f in feeds)), buf)
    return buf.getvalue()


def append_to_config(path: Path, feeds: Sequence[NewFeed], check: Callable[[Path], Any]) -> None:
    """Append entries to the `feeds:` list of the YAML file at `path`, keeping its comments
    and layout. `check(path)` validates a candidate file (raising ConfigError); the file is
    replaced only when the candidate passes and no existing line changed."""
    real = path.resolve()  # a symlinked config: write the file it points to
    try:
        text = real.read_bytes().decode("utf-8")  # not read_text: keep "\r\n" visible
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}:1:1: cannot read: {exc}") from None
    new_text, feeds_line = _appended(text, feeds, path)
    _check_only_inserted(text, new_text, path, feeds_line)
    if "\r\n" in text:
        new_text = new_text.replace("\r\n", "\n").replace("\n", "\r\n")
    _replace(real, path, new_text, check)


def _appended(text: str, feeds: Sequence[NewFeed], path: Path) -> tuple[str, int | None]:
    """The new text, and the index of the `feeds:` line when it had to change (`feeds: []`
    becoming a block list)."""
    y = _yaml()
    tree = y.load(text)
    if tree is None:
        tree = CommentedMap()
    if not isinstance(tree, CommentedMap):
        raise ConfigError(f"{path}:1:1: the top level is not a mapping")
    mapping, sequence, offset = _indentation(tree, text)
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    entries = [_entry(f) for f in feeds]
    current = tree.get("feeds")
    feeds_line = None
    if isinstance(current, CommentedSeq) and len(current) > 0:
        last = current[-1]
        current.extend(entries)
        _move_trailing_comment(last, entries[-1])
    else:
        if "feeds" in tree:
            feeds_line = tree.lc.key("feeds")[0]
        tree["feeds"] = CommentedSeq(entries)
    buf = io.StringIO()
    y.dump(tree, buf)
    return buf.getvalue(), feeds_line


def _indentation(tree: CommentedMap, text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) as the file uses them: ruamel.yaml has one
    setting for the whole file and does not guess it."""
    lines = text.splitlines()
    mapping = 2
    for key, value in tree.items():
        if isinstance(value, CommentedMap) and value and not value.fa.flow_style():
            first = next(iter(value))
            mapping = value.lc.key(first)[1] - tree.lc.key(key)[1]
            break
    sequence, offset = mapping + 2, mapping
    seqs = [(k, v) for k, v in tree.items() if isinstance(v, CommentedSeq)]
    seqs.sort(key=lambda kv: kv[0] != "feeds")  # the feeds list first: that is where we write
    for key, value in seqs:
        if value and not value.fa.flow_style():
            line, col = value.lc.item(0)
            dash = lines[line].find("-")
            if 0 <= dash < col:
                parent = tree.lc.key(key)[1]
                sequence, offset = col - parent, dash - parent
                break
    return max(mapping, 1), max(sequence, offset + 2), max(offset, 0)


def _move_trailing_comment(last: Any, new_last: CommentedMap) -> None:
    """Comment lines after the last feed belong to what follows the list (the next section's
    heading, say), but ruamel keeps them on the last feed's deepest last node, which would
    leave them between the old feeds and the new ones. Keep the end-of-line part there and
    move the lines below the new entries."""
    containers = []
    node = last
    while isinstance(node, (CommentedMap, CommentedSeq)) and len(node) > 0:
        containers.append(node)
        if isinstance(node, CommentedMap) and node.fa.flow_style():
            break
        if isinstance(node, CommentedSeq) and node.fa.flow_style():
            break
        node = node[list(node.keys())[-1]] if isinstance(node, CommentedMap) else node[-1]
    for container in reversed(containers):
        if isinstance(container, CommentedMap):
            slot, index = container.ca.items.get(list(container.keys())[-1]), 2
        else:
            slot, index = container.ca.items.get(len(container) - 1), 0
        if not slot or slot[index] is None:
            continue
        token = slot[index]
        eol, newline, rest = str(token.value).partition("\n")
        if not rest:
            return
        token.value = eol + newline
        moved = copy.copy(token)
        moved.value = "\n" + rest  # end the new entry's line, then the lines as they were
        new_key = list(new_last.keys())[-1]
        new_last.ca.items.setdefault(new_key, [None, None, None, None])[2] = moved
        return


def _check_only_inserted(old: str, new: str, path: Path, feeds_line: int | None) -> None:
    """Every line of the file is still there, in order; only the `feeds:` line itself may
    change when it held an empty list."""
    a, b = old.splitlines(), new.splitlines()
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, _j1, _j2 in matcher.get_opcodes():
        if op == "replace" and (i1, i2) == (feeds_line, (feeds_line or 0) + 1):
            continue
        if op not in ("equal", "insert"):
            raise ConfigError(
                f"{path}:{i1 + 1}:1: appending would rewrite this line (ruamel.yaml cannot keep "
                "this file's layout, e.g. mixed indentation); nothing written: run without "
                "--write and paste the entries into the feeds: list yourself"
            )


def _replace(real: Path, shown: Path, text: str, check: Callable[[Path], Any]) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(real.stat().st_mode))
        try:
            check(tmp)
        except ConfigError as exc:
            problems = [p.replace(str(tmp), str(shown)) for p in exc.problems]
            raise ConfigError.of(problems) from None
        os.replace(tmp, real)
    except OSError as exc:
        raise ConfigError(f"{shown}:1:1: cannot write: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# OPML out


def export_opml(
    feeds: Iterable[tuple[str, str, Sequence[str]]], title: str = "monitor feeds"
) -> bytes:
    """OPML 2.0 of (id, url, tags): a folder per first tag (untagged feeds at the top), each
    feed's tags in `category`, its id as `text` and `title`."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    for fid, url, tags in feeds:
        parent = body
        if tags:
            parent = folders.get(tags[0]) or ET.SubElement(body, "outline", text=tags[0])
            folders[tags[0]] = parent
        attrs = {"type": "rss", "text": fid, "title": fid, "xmlUrl": url}
        category = ",".join(t for t in tags if t and "," not in t and "/" not in t)
        if category:
            attrs["category"] = category
        ET.SubElement(parent, "outline", attrs)
    ET.indent(root)
    xml_text = ET.tostring(root, encoding="unicode")
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{xml_text}\n'.encode()
