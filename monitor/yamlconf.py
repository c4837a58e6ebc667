"""YAML files validated by pydantic, with every problem reported as `FILE:LINE:COL: message`.

ruamel.yaml's round-trip loader keeps the line and column of every key and value; we keep that
tree beside the plain data so that a pydantic error location such as ('feeds', 2, 'url') can be
turned back into the place in the file a person has to edit. `${VAR}` and `${VAR:-default}` are
expanded from the environment in string values before validation; a missing variable is an error
at the value's position (or, where the caller tolerates it, noted in `Located.missing`), and the
variable's value never appears in a message. Only plain YAML is read: an explicit tag other than
the core schema's (`!!str`, `!!int`, …), such as `!!python/object/apply:…`, is an error at its
position, never silently dropped.

ruamel's round trip costs about half a millisecond a line (a second for a config of 2,000
feeds, on every `monitor` command), so a file's plain data, before ${VAR}s are expanded, is
kept as JSON in a cache folder keyed by the SHA-256 of its text; the round-trip tree is then
built only if a position is asked for (an error, a rule's line). See `cache_dir`. On a miss,
a file of plain YAML is read by libyaml (yamlfast.py), the same data 20 times faster.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml import __version__ as _RUAMEL_VERSION
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError

from monitor import yamlfast
from monitor.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Located:
    """A loaded YAML document: plain data plus a way to find where a path came from."""

    def __init__(self, path: Path, tree: Any = None, text: str | None = None) -> None:
        self.path = path
        self._tree = tree
        self._text = text  # the file's text, parsed when `tree` is first asked for
        # ${VAR}s left unset where the caller tolerates it: (location, variable name)
        self.missing: list[tuple[tuple[int | str, ...], str]] = []

    @property
    def tree(self) -> Any:
        """The round-trip tree (line and column of every node)."""
        if self._tree is None and self._text is not None:
            self._tree = _parse(self.path, self._text)
        return self._tree

    def where(self, loc: tuple[int | str, ...], *, key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of the deepest node of `loc` that exists in the file."""
        node = self.tree
        line, col = _start(node)
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if isinstance(node, CommentedMap) and part in node:
                kl, kc = node.lc.key(part)
                vl, vc = node.lc.value(part)
                line, col = (kl, kc) if (key and last) else (vl, vc)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line, col = node.lc.item(part)
                node = node[part]
            else:
                break
        return line + 1, col + 1

    def problem(self, loc: tuple[int | str, ...], message: str, *, key: bool = False) -> str:
        line, col = self.where(loc, key=key)
        return f"{self.path}:{line}:{col}: {message}"


def _start(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return lc.line, lc.col
    return 0, 0


Tolerate = Callable[[tuple[int | str, ...]], bool]
CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")
)


def load(
    path: str | Path, env: Mapping[str, str] | None = None, *, tolerate: Tolerate | None = None
) -> tuple[Any, Located]:
    """Read a YAML file; return (plain data with ${VAR}s expanded, its Located). A ${VAR}
    that is not set is an error, except at a location `tolerate` accepts: there it expands
    to "" and is listed in `Located.missing`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}:1:1: file not found (looked for {path.absolute()}; a relative path is "
            f"resolved against the working directory, {Path.cwd()})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}:1:1: cannot read: {exc}") from None
    key = _cache_key(text)
    raw = _cache_read(key)
    located = Located(path, text=text)
    reader = _Reader(located, env if env is not None else os.environ, tolerate)
    if raw is None:
        fast, raw = yamlfast.read(text)  # libyaml, when the file is plain YAML: 20x faster
        if not fast:
            raw = reader.raw(located.tree, ())
        if reader.cacheable and not reader.problems:
            _cache_write(key, raw)
    data = reader.expand_all(raw, ())
    if reader.problems:
        raise ConfigError.of(reader.problems)
    return data, located


def _parse(path: Path, text: str) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError(f"{path}:{line}:{col}: YAML syntax: {exc.problem or exc}") from None


# --- the parse cache --------------------------------------------------------------------------

CACHE_ENV = "MONITOR_CACHE_DIR"
_CACHE_FORMAT = "1"  # bump when the raw form changes
_CACHE_KEEP = 16  # files kept (the newest): a few configs and watchlists, a few versions each


def cache_dir() -> Path | None:
    """$MONITOR_CACHE_DIR (empty: no cache), else $XDG_CACHE_HOME/monitor/yaml, else
    ~/.cache/monitor/yaml. A folder that cannot be written only costs the parse."""
    if (chosen := os.environ.get(CACHE_ENV)) is not None:
        return Path(chosen) if chosen else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "monitor" / "yaml"


def _cache_key(text: str) -> str:
    seed = f"{_CACHE_FORMAT}\0{_RUAMEL_VERSION}\0{text}"  # a new ruamel may read text anew
    return hashlib.sha256(seed.encode("utf-8", "surrogatepass")).hexdigest()


def _cache_read(key: str) -> Any | None:
    folder = cache_dir()
    if folder is None:
        return None
    try:
        return json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, unreadable or damaged: parse the file


def _cache_write(key: str, raw: Any) -> None:
    folder = cache_dir()
    if folder is None:
        return
    with contextlib.suppress(OSError, ValueError):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        payload = json.dumps({"data": raw}, ensure_ascii=False)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(payload)
            os.replace(tmp, folder / f"{key}.json")  # readers never see half a file
        finally:
            Path(tmp).unlink(missing_ok=True)  # left only if the write or the rename failed
        kept = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[_CACHE_KEEP:]:
            old.unlink(missing_ok=True)


class _Verbatim:
    """A scalar with an explicit non-string core tag: kept as it is, never expanded."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


_JSON_SCALARS = (str, int, float, bool, type(None))


class _Reader:
    """The round-trip tree -> plain data: tags checked (`raw`), then ${VAR}s expanded
    (`expand_all`). The raw form is what the cache keeps."""

    def __init__(self, located: Located, env: Mapping[str, str], tolerate: Tolerate | None):
        self.located = located
        self.env = env
        self.tolerate = tolerate
        self.problems: list[str] = []
        self.cacheable = True  # False: the raw form holds what JSON would not give back

    def raw(self, node: Any, loc: tuple[int | str, ...]) -> Any:
        tag = _tag(node)
        if tag is not None and tag not in CORE_TAGS:
            shown = tag.replace("tag:yaml.org,2002:", "!!")
            self.problems.append(
                self.located.problem(
                    loc,
                    f"{_dotted(loc)}: the YAML tag {shown} is not accepted: monitor reads plain "
                    "YAML (strings, numbers, lists, mappings) and no tags",
                )
            )
            return None
        if isinstance(node, TaggedScalar):  # a core tag: !!str 2024 is the string "2024"
            if tag == "tag:yaml.org,2002:str":
                return str(node.value)
            self.cacheable = False
            return _Verbatim(node.value)
        if isinstance(node, Mapping):
            self.cacheable &= all(isinstance(k, str) for k in node)
            return {k: self.raw(v, (*loc, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [self.raw(v, (*loc, i)) for i, v in enumerate(node)]
        self.cacheable &= isinstance(node, _JSON_SCALARS)
        return node

    def expand_all(self, raw: Any, loc: tuple[int | str, ...]) -> Any:
        if isinstance(raw, dict):
            return {k: self.expand_all(v, (*loc, k)) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.expand_all(v, (*loc, i)) for i, v in enumerate(raw)]
        if isinstance(raw, str):
            return self.expand(raw, loc) if "${" in raw else str(raw)
        return raw.value if isinstance(raw, _Verbatim) else raw

    def expand(self, value: str, loc: tuple[int | str, ...]) -> str:
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            if self.tolerate is not None and self.tolerate(loc):
                self.located.missing.append((loc, name))
                return ""
            self.problems.append(
                self.located.problem(
                    loc, f"environment variable {name} is not set (used in {_dotted(loc)})"
                )
            )
            return ""

        return _VAR.sub(sub, str(value))


def _tag(node: Any) -> str | None:
    tag = getattr(node, "tag", None)
    value = getattr(tag, "value", tag)
    return value if isinstance(value, str) and value else None


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(
    model: type[M], data: Any, located: Located, context: dict[str, Any] | None = None
) -> M:
    """Validate `data` with pydantic; map every error to the file position it came from."""
    try:
        return model.model_validate(data if data is not None else {}, context=context)
    except ValidationError as exc:
        problems = [_describe(err, located) for err in exc.errors()]
        raise ConfigError.of(problems) from None


def _describe(err: Any, located: Located) -> str:
    loc = _data_loc(err["loc"], located.tree)
    kind = err["type"]
    if kind == "extra_forbidden":
        return located.problem(loc, f"unknown key {_dotted(loc)!s}", key=True)
    if kind == "union_tag_invalid":  # point at the `type:` value rather than the mapping
        tag = str(err.get("ctx", {}).get("discriminator", "")).strip("'")
        loc = _data_loc((*loc, tag), located.tree)
        expected = err.get("ctx", {}).get("expected_tags", "")
        return located.problem(loc, f"{_dotted(loc)}: must be one of {expected}")
    if kind == "missing":
        return located.problem(loc[:-1], f"{_dotted(loc)}: required key is missing")
    msg = err["msg"].removeprefix("Value error, ")
    # pydantic echoes the input for some errors; we never do, since it may hold a secret.
    return located.problem(loc, f"{_dotted(loc)}: {msg}")


def _data_loc(loc: tuple[Any, ...], tree: Any) -> tuple[int | str, ...]:
    """Drop the parts pydantic adds that are not in the file (union tags such as 'webhook')."""
    out: list[int | str] = []
    node = tree
    for i, part in enumerate(loc):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif i == len(loc) - 1 and isinstance(part, str):
            pass  # a missing or unknown key: keep it for the message
        else:
            continue
        out.append(part)
    return tuple(out)


def load_model(
    model: type[M],
    path: str | Path,
    env: Mapping[str, str] | None = None,
    context: dict[str, Any] | None = None,
) -> tuple[M, Located]:
    data, located = load(path, env)
    return validate(model, data, located, context), located
