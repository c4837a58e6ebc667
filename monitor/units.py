"""Durations (`30s`, `10m`, `1h`, `7d`) and sizes (`15MB`) as written in the YAML files: read
here (`parse_duration`, `parse_size`) and written here (`format_duration`), in the same
notation wherever monitor shows a duration (docs, logs, digests, the CLI)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_DUR_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}


def parse_duration(value: Any) -> dt.timedelta:
    """`10m` -> 10 minutes. A bare number is seconds. Negative or malformed: ValueError."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m, 1h or 7d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return dt.timedelta(seconds=value)
    m = _DUR.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration; write e.g. 30s, 10m, 1h or 7d")
    return dt.timedelta(seconds=float(m.group(1)) * _DUR_UNITS[m.group(2)])


_UNITS_DOWN = (("d", 86_400), ("h", 3_600), ("m", 60))


def format_duration(value: dt.timedelta | float, *, exact: bool = True) -> str:
    """A duration in the notation of monitor.yaml, whole seconds (`0s` for nothing).

    exact=True: the largest unit that divides it (`90m`, `2d`, `45s`), so it reads back the
    same. exact=False: the largest unit it reaches, rounded down (`1h` for 100 minutes), for
    "how long ago" displays.
    """
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
    secs = max(round(seconds), 0)
    for unit, size in _UNITS_DOWN:
        if secs >= size and (not exact or secs % size == 0):
            return f"{secs // size}{unit}"
    return f"{secs}s"


def parse_size(value: Any) -> int:
    """`15MB` -> 15_000_000 bytes; a bare number is bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 512KB or 15MB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size; write e.g. 512KB or 15MB")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
