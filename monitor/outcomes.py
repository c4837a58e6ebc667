"""What happened, as plain values: per feed (a poll), per delivery attempt, per cycle.

The orchestrators (pipeline, delivery) produce these and hand them to observers (metrics,
the CLI's progress bar, tests); observers import this module, never an orchestrator.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass
class FeedOutcome:
    feed_id: str
    ok: bool
    status: int | None = None
    items: int = 0
    new: int = 0  # items never seen before
    changed: int = 0  # items whose text changed (an edited story)
    alerts: int = 0
    error: str | None = None
    error_kind: str | None = None  # the FetchError/ParseError class name
    elapsed: float = 0.0  # seconds spent fetching
    took_over: bool = False  # claimed after another worker's lease on it ran out
    held_back: dict[str, int] = field(default_factory=dict)  # rule -> matches its cooldown held
    health: tuple[str, str] | None = None  # (previous, new) when this poll changed its state
    # Full text: the new items' pages by result ("ok", "cached", or why not: "FetchTooLarge",
    # "ExtractError", "deadline", ...).
    pages: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    channel: str
    alert_id: str
    rule_id: str
    severity: str
    result: str  # sent | retry | dead
    attempt: int
    next_attempt: dt.datetime | None = None  # when a retry is due
    took_over: bool = False  # claimed after an earlier attempt's lease ran out


@dataclass
class CycleReport:
    feeds: list[FeedOutcome] = field(default_factory=list)

    @property
    def alerts(self) -> int:
        return sum(f.alerts for f in self.feeds)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
