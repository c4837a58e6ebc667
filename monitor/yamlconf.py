"""YAML files validated by pydantic, with every problem reported as `FILE:LINE:COL: message`.

ruamel.yaml's round-trip loader keeps the line and column of every key and value; we keep that
tree beside the plain data so that a pydantic error location such as ('feeds', 2, 'url') can be
turned back into the place in the file a person has to edit. `${VAR}` and `${VAR:-default}` are
expanded from the environment in string values before validation; a missing variable is an error
at the value's position, and the variable's value never appears in a message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from monitor.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Located:
    """A loaded YAML document: plain data plus a way to find where a path came from."""

    def __init__(self, path: Path, tree: Any) -> None:
        self.path = path
        self.tree = tree

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


def load(path: str | Path, env: Mapping[str, str] | None = None) -> tuple[Any, Located]:
    """Read a YAML file; return (plain data with ${VAR}s expanded, its Located)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}:1:1: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}:1:1: cannot read: {exc}") from None
    try:
        tree = YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError(f"{path}:{line}:{col}: YAML syntax: {exc.problem or exc}") from None
    located = Located(path, tree)
    problems: list[str] = []
    data = _plain(tree, (), located, env if env is not None else os.environ, problems)
    if problems:
        raise ConfigError.of(problems)
    return data, located


def _plain(
    node: Any,
    loc: tuple[int | str, ...],
    located: Located,
    env: Mapping[str, str],
    problems: list[str],
) -> Any:
    if isinstance(node, Mapping):
        return {k: _plain(v, (*loc, k), located, env, problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, (*loc, i), located, env, problems) for i, v in enumerate(node)]
    if isinstance(node, str):
        return _expand(node, loc, located, env, problems)
    return node


def _expand(
    value: str,
    loc: tuple[int | str, ...],
    located: Located,
    env: Mapping[str, str],
    problems: list[str],
) -> str:
    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(
            located.problem(loc, f"environment variable {name} is not set (used in {_dotted(loc)})")
        )
        return ""

    return _VAR.sub(sub, str(value))


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
