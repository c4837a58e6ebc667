"""What OPML import and export work on: outlines, notes, planned feeds."""

from __future__ import annotations

from dataclasses import dataclass, field

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
