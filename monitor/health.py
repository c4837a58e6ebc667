"""Feed health and cadence: the rules, as pure functions of what a feed's row records.

The writer (storing.py) calls these after each poll and stores what they decide; nothing
else decides a feed's state or its interval. docs/design.md, "Feed health and cadence",
gives the reasons.

States:

    ok       polls succeed (or fail fewer than `failing_after` times in a row)
    failing  `failing_after` consecutive errors. Ok again at the next good poll, except one
             that parsed nothing (a 304, or the very bytes of last time) after a failed
             parse: that is the same broken body, so the feed stays failing
    stale    polls succeed but no new item for `stale_after` times the feed's usual gap (the
             median of its recorded gaps), and never less than a day; ok again at the next
             poll that finds a new item. A feed whose cadence is unknown (fewer than
             MIN_GAPS gaps) is never called stale: there is no usual gap to be far past

Interval (seconds between polls):

    a feed's own `interval:` pins it; so does `poll.adaptive: false` (then `poll.interval`)
    adaptive: CADENCE_FRACTION of the median gap between new items (the silence since the
    last one counted as one more gap once it is longer than that median), within
    [min_interval, max_interval]; `poll.interval`, as configured, until MIN_GAPS gaps are
    known

Gaps: at a feed's first poll, those between its items' dates (its own history); after that,
at each poll that finds n new items, the time since the last such poll divided by n. The
last MAX_GAPS are kept on the row, so the cadence survives restarts.

Jitter: a random delay of up to `poll.jitter`, but never more than JITTER_FRACTION of the
interval, so a short interval is not swamped by it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CADENCE_FRACTION = 0.5  # poll twice per usual gap: a new item waits half a gap on average
JITTER_FRACTION = 0.1  # of the interval, at most
MAX_GAPS = 20  # recent gaps kept per feed
MIN_GAPS = 2  # gaps needed before the cadence is trusted
STALE_FLOOR = dt.timedelta(days=1)  # never stale sooner than this
PARSE_ERROR = "ParseError"  # the error kind of a body that is not a feed

OK, FAILING, STALE = "ok", "failing", "stale"
STATES = (OK, FAILING, STALE)


@dataclass(frozen=True, slots=True)
class Policy:
    """The poll settings the rules depend on (settings.PollSettings, as plain values)."""

    failing_after: int = 3
    stale_after: float = 5.0
    adaptive: bool = True
    min_interval: dt.timedelta = dt.timedelta(minutes=2)
    max_interval: dt.timedelta = dt.timedelta(hours=2)
    jitter: dt.timedelta = dt.timedelta(seconds=30)


def add_gaps(
    gaps: Sequence[float] | None,
    last_new_at: dt.datetime | None,
    now: dt.datetime,
    *,
    new: int,
    first: bool,
    published: Iterable[dt.datetime | None] = (),
) -> tuple[list[float], dt.datetime | None]:
    """The gaps and the time of the last new item after a good poll that found `new` new
    items. `first`: the feed's first good poll, whose items' dates (`published`) are its
    history; it starts the watch (`last_new_at` = now)."""
    kept = list(gaps or [])
    if first:
        dates = sorted(d for d in published if d is not None and d <= now)
        kept += [(b - a).total_seconds() for a, b in itertools.pairwise(dates) if b > a]
        return kept[-MAX_GAPS:], now
    if new <= 0:
        return kept, last_new_at
    if last_new_at is not None and now > last_new_at:
        kept.append((now - last_new_at).total_seconds() / new)
    return kept[-MAX_GAPS:], now


def usual_gap(gaps: Sequence[float] | None) -> float | None:
    """The median of the recorded gaps, seconds; None while fewer than MIN_GAPS are known."""
    if not gaps or len(gaps) < MIN_GAPS:
        return None
    return float(statistics.median(gaps))


def interval(
    policy: Policy,
    configured: dt.timedelta,
    *,
    pinned: bool,
    gaps: Sequence[float] | None,
    last_new_at: dt.datetime | None,
    now: dt.datetime,
) -> float:
    """Seconds until the next poll of a healthy feed (before jitter and backoff)."""
    if pinned or not policy.adaptive:
        return configured.total_seconds()
    low, high = policy.min_interval.total_seconds(), policy.max_interval.total_seconds()
    gap = usual_gap(gaps)
    if gap is None:  # cadence unknown yet: what the operator configured, as it is
        return configured.total_seconds()
    silence = (now - last_new_at).total_seconds() if last_new_at is not None else 0.0
    if silence > gap:  # quiet for longer than usual: that silence is a gap too
        gap = float(statistics.median([*(gaps or []), silence]))
    return min(max(gap * CADENCE_FRACTION, low), high)


def jitter(policy: Policy, seconds: float) -> float:
    """A random delay for one due time: up to `poll.jitter`, at most JITTER_FRACTION of it."""
    bound = min(policy.jitter.total_seconds(), seconds * JITTER_FRACTION)
    return random.uniform(0.0, max(bound, 0.0))


def is_stale(
    policy: Policy,
    gaps: Sequence[float] | None,
    last_new_at: dt.datetime | None,
    now: dt.datetime,
) -> bool:
    gap = usual_gap(gaps)
    if gap is None or last_new_at is None:
        return False
    limit = max(dt.timedelta(seconds=gap * policy.stale_after), STALE_FLOOR)
    return now - last_new_at > limit


def proves_nothing(state: str, last_error_kind: str | None, parsed: bool) -> bool:
    """A good poll that parsed nothing (304, same bytes) after a failed parse: the same broken
    body. It neither recovers the feed nor counts as a new error."""
    return not parsed and last_error_kind == PARSE_ERROR and state == FAILING


def after_success(
    policy: Policy,
    state: str,
    gaps: Sequence[float] | None,
    last_new_at: dt.datetime | None,
    now: dt.datetime,
) -> str:
    """The state after a good poll (gaps and last_new_at already updated by it)."""
    return STALE if is_stale(policy, gaps, last_new_at, now) else OK


def after_failure(policy: Policy, state: str, consecutive_errors: int) -> str:
    """The state after a failed poll; `consecutive_errors` counts it."""
    return FAILING if consecutive_errors >= policy.failing_after else state
