"""Reading OPML through defusedxml's SAX reader, with FILE:LINE:COL for every outline."""

from __future__ import annotations

import io
import xml.sax
from dataclasses import dataclass
from pathlib import Path
from xml.sax.handler import ContentHandler
from xml.sax.xmlreader import AttributesImpl, Locator

from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.sax import make_parser

from monitor.errors import ConfigError
from monitor.opml.model import (
    MAX_BYTES,
    NAME_LENGTH,
    Document,
    Note,
    Outline,
)

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
