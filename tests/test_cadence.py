"""Polling follows each feed's cadence: a wire posting every 5 minutes and a feed posting once
a day end up polled at different intervals within poll.min_interval and poll.max_interval; a
feed's own `interval:` pins it; the cadence is stored and survives a restart; jitter is
bounded by a tenth of the interval. Six hours pass on an injected clock, not on the wall."""

from __future__ import annotations

import datetime as dt
import email.utils
import statistics
from pathlib import Path

import pytest

from monitor import db, pipeline, scheduler, storing
from monitor.cli import run_cli
from monitor.config import load_rules
from monitor.health import Policy, add_gaps, interval, is_stale, jitter
from monitor.models import Feed, utcnow
from monitor.settings import load_settings
from tests.feedserver import FeedServer, Route

MINUTE = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)


def rss(dates: list[dt.datetime], prefix: str) -> bytes:
    body = "".join(
        f"<item><guid>{prefix}{d.timestamp():.0f}</guid><title>Story</title>"
        f"<pubDate>{email.utils.format_datetime(d)}</pubDate></item>"
        for d in dates
    )
    return f"<rss version='2.0'><channel><title>{prefix}</title>{body}</channel></rss>".encode()


def every(step: dt.timedelta, start: dt.datetime, now: dt.datetime) -> list[dt.datetime]:
    """The last 20 posting times of a feed that posts every `step` since long before `start`."""
    n = int((now - start) / step)
    return [start + step * k for k in range(n, n - 20, -1)]


async def test_a_wire_and_a_daily_feed_are_polled_at_their_own_intervals(
    tmp_path: Path, sqlite_url: str, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Acceptance 3."""
    start = utcnow()
    now = start

    def serve() -> None:
        wire = every(5 * MINUTE, start, now)
        feed_server.routes["/wire.xml"] = Route(rss(wire, "wire"))
        feed_server.routes["/daily.xml"] = Route(rss(every(DAY, start, now), "daily"))
        feed_server.routes["/pinned.xml"] = Route(rss(every(DAY, start, now), "pinned"))

    serve()
    (tmp_path / "w.yaml").write_text("rules: []\n")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: {sqlite_url}\nwatchlist: {tmp_path / 'w.yaml'}\n"
        "poll: {allow_private_networks: true, min_interval: 2m, max_interval: 2h}\n"
        f"feeds:\n  - {{id: wire, url: '{feed_server.url('/wire.xml')}'}}\n"
        f"  - {{id: daily, url: '{feed_server.url('/daily.xml')}'}}\n"
        f"  - {{id: pinned, url: '{feed_server.url('/pinned.xml')}', interval: 5m}}\n"
    )
    settings = load_settings(config)
    runtime = scheduler.build(settings, load_rules(settings))
    runtime.ctx.clock = lambda: now
    try:
        for _ in range(6 * 60):  # six hours, a look for due feeds every minute
            now += MINUTE
            serve()
            await pipeline.poll(runtime.ctx)
    finally:
        await runtime.aclose()

    polls = {name: len(feed_server.hits(f"/{name}.xml")) for name in ("wire", "daily", "pinned")}
    with db.session(runtime.engine) as s:
        rows = {fid: s.get(Feed, fid) for fid in polls}
    wire, daily, pinned = rows["wire"], rows["daily"], rows["pinned"]
    assert wire is not None and daily is not None and pinned is not None
    assert wire.interval_s is not None and 120 <= wire.interval_s <= 400  # about half of 5 m
    assert daily.interval_s == 7200  # half a day, held to max_interval
    assert pinned.interval_s == 300  # its own interval, whatever its cadence
    assert 80 <= polls["wire"] <= 180, polls  # every 2.5 to 3 minutes over six hours
    assert 3 <= polls["daily"] <= 4, polls  # at 0, 2 h, 4 h (and 6 h)
    assert 55 <= polls["pinned"] <= 73, polls  # every 5 minutes (6 on a 1-minute tick)
    assert statistics.median(wire.gaps) == pytest.approx(300, rel=0.3)
    assert all(g == 86400 for g in daily.gaps)  # from the items' dates, at the first poll

    # The cadence is stored: a restarted daemon polls the daily feed every 2 h still.
    runtime = scheduler.build(settings, load_rules(settings))
    runtime.ctx.clock = lambda: now
    try:
        await pipeline.poll(runtime.ctx, everything=True)
    finally:
        await runtime.aclose()
    with db.session(runtime.engine) as s:
        again = s.get(Feed, "daily")
        assert again is not None and again.interval_s == 7200
        assert again.next_due_at is not None and again.last_fetch_at is not None
        wait = (again.next_due_at - again.last_fetch_at).total_seconds()
        assert 7200 <= wait <= 7230  # and at most poll.jitter (30 s) more
    capsys.readouterr()
    assert run_cli(["--config", str(config), "feeds"]) == 0
    table = capsys.readouterr().out
    lines = {line.split("│")[1].strip(): line for line in table.splitlines() if "│" in line}
    assert "│ 2h " in lines["daily"] and "│ 5m " in lines["pinned"]
    assert "│ ok " in lines["wire"] and "│ 2m " in lines["wire"]


# --- the rules, as pure functions (health.py) ---------------------------------------------

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
POLICY = Policy(min_interval=2 * MINUTE, max_interval=dt.timedelta(hours=2))
TEN_MINUTES = 10 * MINUTE


def test_jitter_is_bounded_by_a_tenth_of_the_interval() -> None:
    policy = Policy(jitter=dt.timedelta(seconds=30))
    short = [jitter(policy, 10.0) for _ in range(2000)]
    assert max(short) <= 1.0 and statistics.median(short) == pytest.approx(0.5, abs=0.1)
    long = [jitter(policy, 3600.0) for _ in range(2000)]
    assert max(long) <= 30.0 and max(long) > 25.0  # poll.jitter, the lower bound here
    waits = [(storing.next_due(policy, 10.0, NOW) - NOW).total_seconds() for _ in range(500)]
    assert min(waits) >= 10.0 and max(waits) <= 11.0


def test_the_interval_follows_the_cadence_within_the_bounds() -> None:
    def for_gaps(gaps: list[float], quiet: float = 0.0, **kw: bool) -> float:
        last = NOW - dt.timedelta(seconds=quiet)
        pinned = kw.get("pinned", False)
        return interval(POLICY, TEN_MINUTES, pinned=pinned, gaps=gaps, last_new_at=last, now=NOW)

    assert for_gaps([]) == 600  # cadence unknown: poll.interval
    assert for_gaps([3600.0]) == 600  # one gap is not a cadence yet
    assert for_gaps([3600.0] * 5) == 1800  # half the usual gap
    assert for_gaps([30.0] * 5) == 120  # held to min_interval
    assert for_gaps([86400.0] * 5) == 7200  # held to max_interval
    assert for_gaps([3600.0] * 5, pinned=True) == 600  # its own interval pins it
    # quiet for longer than usual: the silence counts as one more gap
    assert for_gaps([600.0, 600.0, 3600.0], quiet=7200.0) == pytest.approx(1050)
    fixed = Policy(adaptive=False)  # poll.adaptive: false
    assert (
        interval(fixed, TEN_MINUTES, pinned=False, gaps=[30.0] * 5, last_new_at=NOW, now=NOW) == 600
    )


def test_gaps_come_from_the_first_polls_dates_then_from_new_items() -> None:
    dates = [NOW - dt.timedelta(hours=h) for h in (0, 1, 2, 4)] + [None, NOW + DAY]
    gaps, last = add_gaps(None, None, NOW, new=0, first=True, published=dates)
    assert sorted(gaps) == [3600.0, 3600.0, 7200.0] and last == NOW  # future and undated: out
    later = NOW + dt.timedelta(hours=3)
    gaps2, last2 = add_gaps(gaps, last, later, new=3, first=False)
    assert gaps2[-1] == 3600.0 and last2 == later  # 3 h, 3 new items
    assert add_gaps(gaps2, last2, later + DAY, new=0, first=False) == (gaps2, last2)
    many, _ = add_gaps([1.0] * 20, NOW, later, new=1, first=False)
    assert len(many) == 20 and many[-1] == 3 * 3600.0  # the last 20 are kept


def test_stale_is_five_usual_gaps_and_never_less_than_a_day() -> None:
    hourly, daily = [3600.0] * 5, [86400.0] * 5
    assert not is_stale(POLICY, hourly, NOW - dt.timedelta(hours=23), NOW)  # 5 h < a day
    assert is_stale(POLICY, hourly, NOW - dt.timedelta(hours=25), NOW)
    assert not is_stale(POLICY, daily, NOW - 4 * DAY, NOW)
    assert is_stale(POLICY, daily, NOW - 5 * DAY - MINUTE, NOW)
    assert not is_stale(POLICY, [86400.0], NOW - 30 * DAY, NOW)  # cadence unknown
