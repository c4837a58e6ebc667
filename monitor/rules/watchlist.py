"""config/watchlist.yaml: the models, the loader, and the loaded Watchlist.

Loading reports every problem of every file at once, each as `FILE:LINE:COL: message`:
YAML syntax and missing ${VAR}s (yamlconf), unknown keys and bad values (pydantic, through
yamlconf), then what only we can check: duplicate rule or group ids, queries that do not parse
(the column is the query's column in the file plus the offset within the query, when the value
is on one line without escapes), unknown groups, empty and exclude-only queries, unsafe regexes.

A Watchlist is immutable and compiled once: the hot reload builds a new one and swaps it in
only if loading succeeded, so an edit with a mistake never stops monitoring.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from monitor import yamlconf
from monitor.errors import ConfigError, QueryError
from monitor.records import Hit, ItemData
from monitor.rules import query as q
from monitor.rules.compiler import (
    GroupTable,
    QueryParts,
    QueryPartsError,
    compile_query,
    lint,
    parse_member,
)
from monitor.rules.matcher import CompiledQuery, Entry, Matcher, in_scope
from monitor.rules.nodes import DEFAULT_FIELDS, SCOPES
from monitor.severity import Severity
from monitor.units import Duration

FieldName = Literal[
    "title", "summary", "content", "text", "source", "author", "category", "url", "feed"
]
assert set(FieldName.__args__) == set(SCOPES)  # type: ignore[attr-defined]
_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_GROUP_PATTERN = r"^[^\s()\"“”|+@/:]+$"


def _scalar_to_str(value: Any) -> Any:
    # `- 2024` or `- 9M729`-like entries: YAML may hand us an int or float; a term is text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Term = Annotated[str, BeforeValidator(_scalar_to_str)]


class RuleModel(BaseModel):
    """One entry of `rules:`."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=_ID_PATTERN, description="Unique id, used in alerts and the CLI")
    name: str | None = Field(None, description="Shown in alerts; default: the id")
    query: Term | None = Field(None, description="The query (see the language table)")
    all: list[Term] | None = Field(None, description="Structured form: every query must match")
    any: list[Term] | None = Field(None, description="Structured form: at least one must match")
    none: list[Term] | None = Field(None, description="Structured form: none may match")
    severity: Severity = Field("medium", description="info | low | medium | high | critical")
    notify: list[str] | None = Field(None, description="Channel names; default: every channel")
    feeds: list[str] | None = Field(None, description="Only items from these feed ids or tags")
    fields: list[FieldName] = Field(
        list(DEFAULT_FIELDS), min_length=1, description="Where bare terms are looked for"
    )
    cooldown: Duration | None = Field(None, description="At most one alert per rule per window")
    backfill: Duration | None = Field(
        None, description="When the rule is new, also match items stored up to this long ago"
    )


class WatchlistModel(BaseModel):
    """A watchlist file: `groups:` and `rules:`."""

    model_config = ConfigDict(extra="forbid")

    groups: dict[str, list[Term]] = Field(
        default_factory=dict, description="Named alias sets, used in queries as @name"
    )
    rules: list[RuleModel] = Field(default_factory=list, description="The watchlist rules")


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    severity: str
    notify: tuple[str, ...] | None
    feeds: tuple[str, ...] | None
    fields: tuple[str, ...]
    cooldown: dt.timedelta | None
    backfill: dt.timedelta | None
    query_text: str
    compiled: CompiledQuery = field(repr=False, compare=False)

    def applies_to(self, feed_id: str, feed_tags: Collection[str] = ()) -> bool:
        """Whether the rule's `feeds:` scope (feed ids or tags) takes items of this feed."""
        return in_scope(self.scope, feed_id, feed_tags)

    @property
    def scope(self) -> frozenset[str] | None:
        return frozenset(self.feeds) if self.feeds is not None else None


@dataclass(frozen=True, eq=False)
class Watchlist:
    """A loaded, compiled watchlist; immutable (a reload builds a new one). Compare versions,
    not objects."""

    version: str
    rules: tuple[Rule, ...]
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    paths: tuple[Path, ...] = ()
    warnings: tuple[str, ...] = ()  # FILE:LINE:COL: likely mistakes, not errors
    _matcher: Matcher = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        entries = [Entry(r.id, r.compiled, r.scope) for r in self.rules]
        object.__setattr__(self, "_matcher", Matcher(entries))

    def match(self, item: ItemData, feed_tags: Collection[str] = ()) -> list[Hit]:
        """Every rule that matches `item`, in watchlist order, each with terms and snippet."""
        return self._matcher.match(item, feed_tags)

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


# --- loading ------------------------------------------------------------------------------


@dataclass
class _File:
    path: Path
    data: Any
    located: yamlconf.Located
    lines: list[str]
    model: WatchlistModel | None


class _Loader:
    def __init__(self, channels: Collection[str] | None, feeds: Collection[str] | None) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.feeds = feeds
        self.groups = GroupTable()
        self.group_texts: dict[str, tuple[str, ...]] = {}
        self.rule_ids: dict[str, str] = {}
        self.channels = channels

    def problem(self, f: _File, loc: tuple[int | str, ...], msg: str, key: bool = False) -> None:
        self.problems.append(f.located.problem(loc, msg, key=key))

    def query_problem(
        self, f: _File, loc: tuple[int | str, ...], text: str, column: int, msg: str
    ) -> None:
        self.problems.append(self.at(f, loc, text, column, msg))

    def at(self, f: _File, loc: tuple[int | str, ...], text: str, column: int, msg: str) -> str:
        """`FILE:LINE:COL: msg` at `column` of a query written at `loc`."""
        line, col = f.located.where(loc)
        src = f.lines[line - 1] if 0 < line <= len(f.lines) else ""
        start = col - 1
        if not text.strip():
            pass  # an empty query: point at the value itself
        elif src[start : start + 1] in "'\"" and src[start + 1 : start + 1 + len(text)] == text:
            col += column  # skip the quote
        elif src[start : start + len(text)] == text:
            col += column - 1
        # else: escapes, a block scalar or a ${VAR}: the value's own position is the best we have
        return f"{f.path}:{line}:{col}: {msg}"

    def lint(self, f: _File, loc: tuple[int | str, ...], text: str, what: str) -> None:
        for column, msg in lint(text):
            self.warnings.append(self.at(f, loc, text, column, f"{what}: {msg}"))

    # groups ----------------------------------------------------------------------------

    def load_groups(self, f: _File) -> None:
        groups = f.data.get("groups") if isinstance(f.data, dict) else None
        if not isinstance(groups, dict):
            return
        for name, members in groups.items():
            gname = str(name)
            if gname in self.groups:
                self.problem(f, ("groups", name), f"duplicate group {gname}", key=True)
                continue
            if not _matches(_GROUP_PATTERN, gname):
                self.problem(f, ("groups", name), f"bad group name {gname!r}", key=True)
                continue
            if not isinstance(members, list):
                continue  # pydantic reports it
            parsed: list[q.SNode] | str = []
            for j, m in enumerate(members):
                text = str(_scalar_to_str(m))
                try:
                    node = parse_member(gname, text)
                except q.QuerySyntaxError as exc:
                    self.query_problem(
                        f, ("groups", name, j), text, exc.column, f"group {gname}: {exc.reason}"
                    )
                    parsed = "reported"
                    continue
                self.lint(f, ("groups", name, j), text, f"group {gname}")
                if not isinstance(parsed, str):
                    parsed.append(node)
            if parsed == []:
                self.problem(f, ("groups", name), f"group {gname} is empty")
                parsed = "reported"
            self.groups.entries[gname] = parsed
            self.group_texts[gname] = tuple(str(m) for m in members)

    # rules -----------------------------------------------------------------------------

    def load_rules(self, f: _File) -> list[CompiledQuery | None]:
        rules = f.data.get("rules") if isinstance(f.data, dict) else None
        if not isinstance(rules, list):
            return []
        return [self.load_rule(f, i, r) for i, r in enumerate(rules)]

    def load_rule(self, f: _File, i: int, raw: Any) -> CompiledQuery | None:
        if not isinstance(raw, dict):
            return None
        rid = str(raw.get("id", f"#{i + 1}"))
        if "id" in raw:
            where = f"{f.path}:{f.located.where(('rules', i, 'id'))[0]}"
            if rid in self.rule_ids:
                self.problem(
                    f, ("rules", i, "id"),
                    f"duplicate rule id {rid} (first defined at {self.rule_ids[rid]})",
                )  # fmt: skip
            else:
                self.rule_ids[rid] = where
        self.check_notify(f, i, rid, raw.get("notify"))
        self.check_feeds(f, i, rid, raw.get("feeds"))
        fields = raw.get("fields", list(DEFAULT_FIELDS))
        if not (isinstance(fields, list) and fields and all(x in SCOPES for x in fields)):
            fields = list(DEFAULT_FIELDS)  # pydantic reports it
        parts = _parts(raw)
        if parts is None:
            return None  # a value of the wrong type: pydantic reports it
        for name, texts in parts.named():
            for j, text in enumerate(texts):
                at: tuple[int | str, ...] = ("rules", i, name)
                self.lint(f, at if name == "query" else (*at, j), text, f"rule {rid}")
        try:
            return compile_query(parts, self.groups, fields=fields)
        except QueryPartsError as exc:
            for p in exc.parts:
                loc: tuple[int | str, ...] = ("rules", i)
                if p.part is not None:
                    loc = (*loc, p.part) if p.index is None else (*loc, p.part, p.index)
                if p.error is not None:
                    msg = f"rule {rid}: {p.error.reason}"
                    self.query_problem(f, loc, p.error.query, p.error.column, msg)
                else:
                    self.problem(f, loc, f"rule {rid}: {p.reason}")
            return None

    def check_feeds(self, f: _File, i: int, rid: str, feeds: Any) -> None:
        """Every `feeds:` entry must be a configured feed id or tag: a rule scoped to a feed
        that does not exist can never fire."""
        if self.feeds is None or not isinstance(feeds, list):
            return
        for j, name in enumerate(feeds):
            if str(name) not in self.feeds:
                self.problem(
                    f, ("rules", i, "feeds", j),
                    f"rule {rid!r}: feeds names {name!r}, which is no feed id or tag of "
                    "monitor.yaml: the rule could never fire",
                )  # fmt: skip

    def check_notify(self, f: _File, i: int, rid: str, notify: Any) -> None:
        """Every `notify:` name must be a configured channel: a typo would send nothing."""
        if self.channels is None or not isinstance(notify, list):
            return
        known = ", ".join(sorted(self.channels))
        for j, name in enumerate(notify):
            if name not in self.channels:
                self.problem(
                    f, ("rules", i, "notify", j),
                    f"rule {rid!r}: notify names unknown channel {name!r} (configured: {known})",
                )  # fmt: skip


def _parts(raw: dict[str, Any]) -> QueryParts | None:
    """The rule's query / all / any / none as texts, or None if one is of the wrong type."""

    def text(v: Any) -> str | None:
        return None if isinstance(v, bool) or not isinstance(v, str | int | float) else str(v)

    values: dict[str, Any] = {}
    for kind in ("query", "all", "any", "none"):
        value = raw.get(kind)
        if value is None:
            continue
        if kind == "query":
            values[kind] = text(value)
        elif isinstance(value, list):
            values[kind] = tuple(text(v) for v in value)
        else:
            return None
        if values[kind] is None or (kind != "query" and None in values[kind]):
            return None
    return QueryParts(**values)


def _matches(pattern: str, text: str) -> bool:
    return re.match(pattern, text) is not None


def _position(problem: str, paths: list[Path]) -> tuple[int, int, int]:
    """Sort key for `FILE:LINE:COL: message`: file order, then place in the file."""
    for i, path in enumerate(paths):
        prefix = f"{path}:"
        if problem.startswith(prefix):
            m = re.match(r"(\d+):(\d+):", problem[len(prefix) :])
            if m:
                return i, int(m.group(1)), int(m.group(2))
            return i, 0, 0
    return len(paths), 0, 0


def load_watchlist(
    paths: Sequence[Path | str] | Path | str,
    env: Mapping[str, str] | None = None,
    *,
    channels: Collection[str] | None = None,
    feeds: Collection[str] | None = None,
) -> Watchlist:
    """Load, validate and compile one or more watchlist files (groups and rules are merged).
    `channels`: the configured channel names, which every `notify:` must use; `feeds`: the
    configured feed ids and tags, which every `feeds:` must use (None: not checked). Likely
    mistakes come back in `Watchlist.warnings`.

    Raises ConfigError whose `.problems` lists every problem as `FILE:LINE:COL: message`.
    """
    path_list = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    loader = _Loader(channels, feeds)
    digest = hashlib.sha256()
    files: list[_File] = []
    for path in path_list:
        try:
            data, located = yamlconf.load(path, env)
        except ConfigError as exc:
            loader.problems.extend(exc.problems)
            continue
        try:
            raw = path.read_bytes()
        except OSError as exc:  # pragma: no cover - yamlconf just read it
            loader.problems.append(f"{path}:1:1: cannot read: {exc}")
            continue
        digest.update(hashlib.sha256(raw).digest())
        digest.update(json.dumps(data, sort_keys=True, default=str).encode())
        if data is not None and not isinstance(data, dict):
            loader.problems.append(
                located.problem((), "a watchlist is a mapping with groups: and rules:")
            )
            continue
        data = data or {}
        try:
            model: WatchlistModel | None = yamlconf.validate(WatchlistModel, data, located)
        except ConfigError as exc:
            loader.problems.extend(exc.problems)
            model = None
        lines = raw.decode("utf-8", errors="replace").splitlines()
        files.append(_File(path, data, located, lines, model))

    for f in files:
        loader.load_groups(f)
    compiled: list[list[CompiledQuery | None]] = [loader.load_rules(f) for f in files]
    if loader.problems:
        found = sorted(loader.problems, key=lambda p: _position(p, path_list))
        raise ConfigError.of(found)

    rules: list[Rule] = []
    for f, results in zip(files, compiled, strict=True):
        assert f.model is not None
        for m, result in zip(f.model.rules, results, strict=True):
            assert result is not None
            rules.append(
                Rule(
                    id=m.id,
                    name=m.name or m.id,
                    severity=m.severity,
                    notify=tuple(m.notify) if m.notify is not None else None,
                    feeds=tuple(m.feeds) if m.feeds is not None else None,
                    fields=tuple(m.fields),
                    cooldown=m.cooldown,
                    backfill=m.backfill,
                    query_text=result.text,
                    compiled=result,
                )
            )
    return Watchlist(
        version=digest.hexdigest()[:12],
        rules=tuple(rules),
        groups=dict(loader.group_texts),
        paths=tuple(path_list),
        warnings=tuple(sorted(loader.warnings, key=lambda p: _position(p, path_list))),
    )


__all__ = ["QueryError", "Rule", "Watchlist", "load_watchlist"]
