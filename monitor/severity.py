"""The severity scale, written once: rules carry a severity, channels a minimum, digests sort
by it, Apprise colours by it.

    info < low < medium < high < critical
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal, TypeVar, get_args

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
"""Least severe first."""

T = TypeVar("T")


def rank(severity: str) -> int:
    """0 (info) .. 4 (critical); a severity outside the scale ranks below info (-1)."""
    try:
        return SEVERITIES.index(severity.lower())
    except ValueError:
        return -1


def at_least(severity: str, minimum: str) -> bool:
    """Whether `severity` reaches `minimum` (a channel's min_severity)."""
    return rank(severity) >= rank(minimum)


def most_severe_first(items: Iterable[T], key: Callable[[T], str]) -> list[T]:
    """Most severe first; equal severities keep the order given; unknown ones last."""
    return sorted(items, key=lambda x: -rank(key(x)))
