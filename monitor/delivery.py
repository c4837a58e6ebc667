"""Delivery: everything after "the alert is committed". The outbox's due deliveries are
claimed, grouped into send units (one alert, or a digest of many), paced by each channel's
rate budget, sent outside any transaction, and settled: sent, retried later with backoff, or
dead.

A pure core decides, the I/O around it does (the shape of lemon24/reader's `_update.py`):

    plan_units(route, claimed, budget)    which claimed deliveries go out together
    RetryPolicy.settle(attempt, error)    what an attempt's outcome means for the row
    digest_id(unit)                       the stable id of a digest (same alerts, same id)

    deliver(outbox)   claim -> plan -> send (one task per unit) -> settle -> observers

A notifier makes one attempt and raises DeliveryError or returns; this module owns backoff,
leases and bookkeeping.

Feed health changes (`feed_health`) share the outbox and its retries and dead letters, but
each goes out alone and at once: never held for a digest's window, never folded into a
digest, not counted against a channel's rate budget (there is one per change of a feed's
state, and an analyst must see at once that a feed broke).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy.engine import Engine

from monitor import db, store
from monitor.alert.routes import ChannelRoute
from monitor.errors import DeliveryError, StoreError
from monitor.models import AlertMessage, Delivery, HealthMessage, utcnow
from monitor.outcomes import DeliveryOutcome, DeliveryReport
from monitor.store import Claimed

log = structlog.get_logger("monitor.delivery")

UNLIMITED = 1 << 30
MIN_RETRY_DELAY = 1.0  # seconds: never retry in a tight loop, whatever a peer asks


@dataclass(frozen=True, slots=True)
class Settlement:
    """The outcome of one attempt, for the delivery rows it covered."""

    result: str  # sent | retry | dead
    next_attempt: dt.datetime | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter: 30 s, 1 m, 2 m ... capped at 4 h, about 24 h in all."""

    base: float = 30.0
    cap: float = 4 * 3600.0
    max_attempts: int = 14
    lease: dt.timedelta = dt.timedelta(minutes=5)

    def delay(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds until the next attempt: what the peer asked (Retry-After, already within
        a day: web.parse_retry_after), at least MIN_RETRY_DELAY; else backoff with jitter."""
        if retry_after is not None:
            return max(retry_after, MIN_RETRY_DELAY)
        backoff = min(self.cap, self.base * 2 ** max(0, attempts - 1))
        return backoff * random.uniform(0.75, 1.0)  # spread retries of many deliveries apart

    def settle(self, attempt: int, error: DeliveryError | None, now: dt.datetime) -> Settlement:
        if error is None:
            return Settlement("sent")
        if error.permanent or attempt >= self.max_attempts:
            return Settlement("dead", None, str(error))
        nxt = now + dt.timedelta(seconds=self.delay(attempt, error.retry_after))
        return Settlement("retry", nxt, str(error))


@dataclass
class Outbox:
    """What delivery needs: the database, the channels, the retry policy, and the sends in
    flight (the daemon does not await them; it waits for them when it stops)."""

    engine: Engine
    channels: Mapping[str, ChannelRoute]
    worker: str = "worker"  # this process, as claims name it (scheduler.worker_id)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    on_delivery: list[Callable[[DeliveryOutcome], None]] = field(default_factory=list)
    inflight: set[asyncio.Task[None]] = field(default_factory=set)
    clock: Callable[[], dt.datetime] = utcnow  # tests inject one (pipeline.Context.clock)


# --- the pure core -----------------------------------------------------------------------


def plan_units(
    route: ChannelRoute | None, claimed: Sequence[Claimed], budget: int
) -> list[list[Claimed]]:
    """A digest channel sends what it claimed as one digest; so does any channel that claimed
    more than its burst (a burst of matches becomes one message; a webhook has none unless
    it sets one) or than its rate budget allows; otherwise one message per alert."""
    if not claimed:
        return []
    if route is None:
        return [[c] for c in claimed]
    burst = route.burst if route.burst is not None else UNLIMITED
    if route.digest is not None or len(claimed) > min(burst, budget):
        return [list(claimed)]
    return [[c] for c in claimed]


def digest_id(unit: Sequence[Claimed]) -> str:
    """The same alerts give the same digest id, so a retried digest keeps its webhook-id
    and Message-ID."""
    ids = ",".join(sorted(c.msg.id for c in unit))
    return "dgst_" + hashlib.sha256(ids.encode()).hexdigest()[:28]


def is_digest(route: ChannelRoute | None, unit: Sequence[Claimed]) -> bool:
    if unit and unit[0].health:
        return False
    return route is not None and (route.digest is not None or len(unit) > 1)


# --- the I/O -----------------------------------------------------------------------------


async def deliver(outbox: Outbox, *, wait: bool = True, limit: int = 1000) -> DeliveryReport:
    """Send every due delivery: claim it, send outside any transaction, record the outcome.

    wait=False (the daemon) starts the sends and returns: a slow receiver then holds up only
    its own sends (each is leased, so the next tick does not take it again), never the others.
    The report then counts nothing; outcomes reach the observers and the log.
    """
    report = DeliveryReport()
    units = await asyncio.to_thread(_claim_units, outbox, outbox.clock(), limit)
    tasks = [asyncio.create_task(_send(outbox, unit, report)) for unit in units]
    if wait:
        await asyncio.gather(*tasks)
        # `once` delivers everything due, not the first `limit`: claim again while a full
        # batch came (what failed meanwhile is due later, so this ends).
        while sum(len(u) for u in units) >= limit:
            units = await asyncio.to_thread(_claim_units, outbox, outbox.clock(), limit)
            await asyncio.gather(*(_send(outbox, unit, report) for unit in units))
    else:
        for task in tasks:
            outbox.inflight.add(task)
            task.add_done_callback(outbox.inflight.discard)
    return report


def _claim_units(outbox: Outbox, now: dt.datetime, limit: int) -> list[list[Claimed]]:
    """Claim what is due in one transaction (committed once for the whole batch)."""
    units: list[list[Claimed]] = []
    with db.session(outbox.engine) as s:
        by_channel: dict[str, list[Delivery]] = {}
        for d in store.due_deliveries(s, now, limit):
            by_channel.setdefault(d.channel, []).append(d)
        for channel, rows in by_channel.items():
            route = outbox.channels.get(channel)
            lease = route.lease if route is not None else outbox.retry.lease
            told = [d for d in rows if d.health_id is not None]
            rows = [d for d in rows if d.health_id is None]
            units.extend([c] for c in store.claim(s, told, now, lease, worker=outbox.worker))
            if not rows:
                continue
            budget = _budget(s, channel, route, now)
            if budget == 0:
                continue  # over the rate limit: they stay due and go together later
            if route is not None and route.digest is not None:
                rows = store.pending_deliveries(s, channel, now)  # the window's worth
            claimed = store.claim(s, rows, now, lease, worker=outbox.worker)
            units.extend(plan_units(route, claimed, budget))
        s.commit()
    return units


def _budget(s: db.Session, channel: str, route: ChannelRoute | None, now: dt.datetime) -> int:
    """How many more messages the channel may send this hour."""
    if route is None or route.rate_limit is None:
        return UNLIMITED
    sent = store.messages_sent_since(s, channel, now - dt.timedelta(hours=1))
    return max(0, route.rate_limit - sent)


async def _send(outbox: Outbox, unit: list[Claimed], report: DeliveryReport) -> None:
    channel = unit[0].channel
    route = outbox.channels.get(channel)
    batch_id = digest_id(unit) if is_digest(route, unit) else None
    try:
        error = await _attempt(route, channel, unit, batch_id)
    except asyncio.CancelledError:
        # Cut off (the daemon stopping past its grace period): hand the deliveries back,
        # due now, rather than leave them leased. The peer may have had it: at least once.
        await asyncio.shield(asyncio.to_thread(_release, outbox, unit))
        raise
    attempt = max(c.attempt for c in unit)
    now = outbox.clock()
    outcome = outbox.retry.settle(attempt, error, now)
    await asyncio.to_thread(_record, outbox, unit, outcome, now, batch_id)
    alert_ids = [c.msg.id for c in unit]
    if outcome.result == "sent":
        report.sent += len(unit)
        log.info("delivered", channel=channel, alerts=alert_ids, digest=batch_id, attempt=attempt)
    elif outcome.result == "dead":
        report.dead += len(unit)
        log.error(
            "delivery_dead", channel=channel, alerts=alert_ids, attempts=attempt, error=str(error)
        )
    else:
        report.failed += len(unit)
        log.warning(
            "delivery_retry",
            channel=channel,
            alerts=alert_ids,
            attempts=attempt,
            error=str(error),
            next_attempt=outcome.next_attempt.isoformat() if outcome.next_attempt else None,
        )
    for c in unit:
        observed = DeliveryOutcome(
            c.channel,
            c.msg.id,
            c.msg.rule_id if isinstance(c.msg, AlertMessage) else "",
            c.msg.severity if isinstance(c.msg, AlertMessage) else "",
            outcome.result,
            c.attempt,
            outcome.next_attempt,
            c.took_over,
        )
        for observe in outbox.on_delivery:
            observe(observed)


async def _attempt(
    route: ChannelRoute | None, channel: str, unit: list[Claimed], batch_id: str | None
) -> DeliveryError | None:
    """One attempt at the unit; the error, or None when it was delivered."""
    if route is None:
        return DeliveryError(f"channel {channel!r} is no longer configured", permanent=True)
    try:
        async with asyncio.timeout(route.timeout + 5):
            msg = unit[0].msg
            if isinstance(msg, HealthMessage):
                await route.notifier.send_health(msg)
            elif batch_id is not None:
                window = route.digest or dt.timedelta(0)
                alerts = [c.msg for c in unit if isinstance(c.msg, AlertMessage)]
                await route.notifier.send_digest(batch_id, alerts, window)
            else:
                await route.notifier.send(msg)
    except TimeoutError:
        return DeliveryError(f"no answer within {route.timeout:g}s")
    except DeliveryError as exc:
        return exc
    return None


def _release(outbox: Outbox, unit: Sequence[Claimed]) -> None:
    try:
        with db.session(outbox.engine) as s:
            store.release_deliveries(
                s, [c.id for c in unit], worker=outbox.worker, now=outbox.clock()
            )
            s.commit()
    except StoreError as exc:
        log.error("delivery_not_released", deliveries=[c.id for c in unit], error=str(exc))


def _record(
    outbox: Outbox,
    unit: Sequence[Claimed],
    outcome: Settlement,
    now: dt.datetime,
    batch_id: str | None,
) -> None:
    ids = [c.id for c in unit]
    try:
        with db.session(outbox.engine) as s:
            if outcome.result == "sent":
                store.mark_sent(s, ids, now, digest_id=batch_id)
            else:
                store.mark_failed(s, ids, outcome.error or "", outcome.next_attempt)
            s.commit()
    except StoreError as exc:
        # The send happened; if we cannot record it, the lease expires and it is sent again
        # (at least once). Say so rather than fail the whole batch.
        log.error("delivery_not_recorded", deliveries=ids, error=str(exc))
