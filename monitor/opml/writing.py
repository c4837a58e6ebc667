"""Writing: feed entries appended to monitor.yaml (comments kept), and OPML 2.0 out."""

from __future__ import annotations

import copy
import difflib
import io
import os
import stat
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from monitor.errors import ConfigError
from monitor.opml.model import (
    NewFeed,
)
from monitor.opml.planning import slug_id

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
