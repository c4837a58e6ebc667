"""A YAML file's plain data read by libyaml (PyYAML's C parser), for yamlconf's cache misses.

ruamel's round trip (yamlconf) costs about a third of a millisecond a line: 0.72 s for a
config of 2,000 feeds, on the one core of a start, before any feed is fetched; libyaml's
events for the same file take under 50 ms. libyaml reads YAML 1.1, we read 1.2, so it is
used only for the structure: every plain scalar is resolved by ruamel's own YAML 1.2
resolver and built by ruamel's constructor, so a value is what the round trip makes of it,
as the parse cache (yamlconf) keeps it (plain ints, floats, booleans, None and strings).

Anything outside the plain subset declines, and yamlconf takes the round trip, which reads
it or says what is wrong and where: a tag, an anchor or alias, a merge key, a key that is
not a string, a repeated key, a value that is not JSON's (a date), a block scalar (`|`, `>`:
libyaml takes headers ruamel refuses), a pair in a flow sequence (`[a: ]`, the same), a
second document, a directive (`%YAML 1.1` changes
the resolution), the line breaks 1.1 knows and 1.2 does not (NEL, LS, PS), a tab (where
the two disagree on where one may stand: `a:\t1`), and any error of libyaml's.
tests/test_yamlfast.py compares both readings on every YAML file of the repository, on edge
cases and on generated documents.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.nodes import ScalarNode as RuamelScalar
from ruamel.yaml.resolver import VersionedResolver

if TYPE_CHECKING:
    import yaml

_CORE = "tag:yaml.org,2002:"
_BUILT = {f"{_CORE}{t}" for t in ("null", "bool", "int", "float")}
_OUTSIDE = re.compile("[\t\x85\u2028\u2029]|^%", re.M)


class _Bail(Exception):
    """Outside the plain subset: the round trip reads this file."""


class _Scalars:
    """Plain scalars resolved and built as ruamel's round trip does, each text once."""

    def __init__(self) -> None:
        self.resolver = VersionedResolver()
        self.constructor = YAML(typ="rt").constructor
        self.done: dict[str, Any] = {}

    def value(self, text: str) -> Any:
        try:
            return self.done[text]
        except KeyError:
            pass
        tag = self.resolver.resolve(RuamelScalar, text, (True, False))
        tag = str(getattr(tag, "value", tag))
        if tag == f"{_CORE}str":
            got: Any = text
        elif tag in _BUILT:
            built = self.constructor.construct_object(RuamelScalar(tag, text), deep=True)
            got = _plain(built)
        else:  # a timestamp, a merge key, '=': the round trip's business
            raise _Bail(tag)
        self.done[text] = got
        return got


def _plain(value: Any) -> Any:
    """ruamel's scalar types (ScalarInt, ScalarFloat, ...) as the plain ones JSON gives back."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    raise _Bail(type(value).__name__)


def read(text: str) -> tuple[bool, Any]:
    """(True, the plain data) when the text is in the plain subset, else (False, None)."""
    if _OUTSIDE.search(text):
        return False, None
    import yaml  # here: 10 ms of a start that finds its files in the parse cache

    try:
        return True, _Builder(text).build(yaml.parse(text, Loader=yaml.CSafeLoader))
    except (_Bail, yaml.YAMLError):
        return False, None


class _Builder:
    """libyaml's events -> the plain data, refusing every event outside the plain subset."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.scalars = _Scalars()
        self.stack: list[list[Any] | dict[str, Any]] = []
        self.keys: list[str | None] = []  # per open mapping: the key awaiting its value
        self.documents = 0
        self.top: Any = None

    def build(self, events: Iterable[yaml.Event]) -> Any:
        import yaml  # imported by read() already

        for event in events:
            if isinstance(event, yaml.ScalarEvent):
                self.add(self.scalar(event), scalar=True)
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                self.plain(event)
                if event.flow_style and self.text[event.start_mark.index] not in "[{":
                    raise _Bail("a pair in a flow sequence")  # [a: b]: ruamel refuses some
                self.stack.append({} if isinstance(event, yaml.MappingStartEvent) else [])
                self.keys.append(None)
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                self.keys.pop()
                self.add(self.stack.pop(), scalar=False)
            elif isinstance(event, yaml.DocumentStartEvent):
                self.documents += 1
                if self.documents > 1 or event.version or event.tags:
                    raise _Bail("a second document, or a directive")
            elif isinstance(event, yaml.AliasEvent):
                raise _Bail("alias")
        return self.top

    @staticmethod
    def plain(event: Any) -> None:
        if event.anchor is not None or event.tag is not None:
            raise _Bail("anchor or tag")

    def scalar(self, event: yaml.ScalarEvent) -> Any:
        self.plain(event)
        if event.style in ("|", ">"):  # block scalars: libyaml's headers are laxer
            raise _Bail("block scalar")
        return self.scalars.value(event.value) if event.implicit[0] else event.value

    def add(self, value: Any, *, scalar: bool) -> None:
        if not self.stack:
            self.top = value
            return
        into = self.stack[-1]
        if isinstance(into, list):
            into.append(value)
            return
        key = self.keys[-1]
        if key is None:  # a key: a string, given once
            if not scalar or not isinstance(value, str) or value in into:
                raise _Bail("key")
            self.keys[-1] = value
        else:
            into[key] = value
            self.keys[-1] = None
