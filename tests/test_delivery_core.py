"""Delivery's pure core, without a database: how claimed deliveries become send units, and
what the outcome of an attempt means for the rows."""

from __future__ import annotations

import datetime as dt

from monitor.alert.log import LogNotifier
from monitor.alert.routes import ChannelRoute, holds, routes_for
from monitor.delivery import RetryPolicy, digest_id, is_digest, plan_units
from monitor.errors import DeliveryError
from monitor.store import Claimed
from tests.servers import make_alert

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def claimed(n: int, channel: str = "ops") -> list[Claimed]:
    return [Claimed(i, channel, 1, make_alert(id=f"alrt_{i}")) for i in range(n)]


def route(**kw: object) -> ChannelRoute:
    return ChannelRoute(LogNotifier("ops"), **kw)  # type: ignore[arg-type]


def test_one_unit_per_alert_up_to_the_burst() -> None:
    units = plan_units(route(burst=3), claimed(3), budget=1 << 30)
    assert [len(u) for u in units] == [1, 1, 1]
    assert not any(is_digest(route(burst=3), u) for u in units)


def test_more_than_the_burst_is_one_digest() -> None:
    units = plan_units(route(burst=3), claimed(4), budget=1 << 30)
    assert [len(u) for u in units] == [4]
    assert is_digest(route(burst=3), units[0])


def test_more_than_the_rate_budget_is_one_digest() -> None:
    assert [len(u) for u in plan_units(route(burst=10), claimed(3), budget=2)] == [3]


def test_a_digest_channel_sends_one_digest_even_of_one() -> None:
    r = route(digest=dt.timedelta(hours=1))
    [unit] = plan_units(r, claimed(1), budget=1 << 30)
    assert is_digest(r, unit)


def test_nothing_claimed_nothing_planned() -> None:
    assert plan_units(route(), [], budget=5) == []


def test_digest_id_depends_on_the_alerts_only() -> None:
    a, b = claimed(2)
    assert digest_id([a, b]) == digest_id([b, a])
    assert digest_id([a]) != digest_id([a, b])
    assert digest_id([a]).startswith("dgst_") and "." not in digest_id([a])


def test_settle() -> None:
    policy = RetryPolicy(base=30, cap=3600, max_attempts=3)
    assert policy.settle(1, None, NOW).result == "sent"
    retry = policy.settle(1, DeliveryError("HTTP 500"), NOW)
    assert retry.result == "retry" and retry.error == "HTTP 500"
    assert retry.next_attempt is not None
    assert 22.5 <= (retry.next_attempt - NOW).total_seconds() <= 30
    assert policy.settle(3, DeliveryError("HTTP 500"), NOW).result == "dead"
    assert policy.settle(1, DeliveryError("HTTP 410", permanent=True), NOW).result == "dead"
    asked = policy.settle(1, DeliveryError("HTTP 429", retry_after=0.0), NOW)
    assert asked.next_attempt == NOW + dt.timedelta(seconds=1)  # never a tight loop


def test_routing_by_notify_and_severity() -> None:
    channels = {"ops": route(), "pager": route(min_severity="high")}
    assert routes_for(None, "medium", channels) == ("ops",)
    assert routes_for(None, "critical", channels) == ("ops", "pager")
    assert routes_for(("pager", "gone"), "high", channels) == ("pager",)
    assert holds({"d": route(digest=dt.timedelta(hours=1)), "ops": route()}) == {
        "d": dt.timedelta(hours=1)
    }
