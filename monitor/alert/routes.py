"""Routing: which channels an alert goes to, and how each channel batches and paces.

A `ChannelRoute` is a configured channel as delivery sees it: its notifier, the minimum
severity it takes, its deadline, its digest window, its burst size and its rate limit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from monitor.alert import Notifier
from monitor.severity import at_least


@dataclass(frozen=True, slots=True)
class ChannelRoute:
    notifier: Notifier
    min_severity: str = "info"
    timeout: float = 30.0
    digest: dt.timedelta | None = None  # hold alerts and send one digest per window
    burst: int | None = 10  # more than this many due at once: one digest (None: never)
    rate_limit: int | None = None  # messages per hour at most

    @property
    def lease(self) -> dt.timedelta:
        """How long a claimed send is ours: past its timeout, so never taken twice while in
        flight, and short, so a crashed process's sends are soon taken up again."""
        return dt.timedelta(seconds=self.timeout + 10)


def routes_for(
    notify: tuple[str, ...] | None, severity: str, channels: Mapping[str, ChannelRoute]
) -> tuple[str, ...]:
    """The channels an alert of this severity goes to: the rule's `notify` list (default
    every channel), less the channels whose minimum severity is above it."""
    names = notify if notify is not None else tuple(channels)
    return tuple(n for n in names if n in channels and at_least(severity, channels[n].min_severity))


def holds(channels: Mapping[str, ChannelRoute]) -> dict[str, dt.timedelta]:
    """Digest channels hold each new alert until the end of their window."""
    return {name: r.digest for name, r in channels.items() if r.digest is not None}
