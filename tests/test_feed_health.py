"""A failing feed is data, not an exception: its errors are counted, shown by `monitor
feeds`, and it is asked less often while it keeps failing; it recovers by itself."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from monitor import db, pipeline, scheduler
from monitor.cli import run_cli
from monitor.config import load_rules
from monitor.models import Feed
from monitor.settings import load_settings
from tests.feedserver import FeedServer, Route


def start(tmp_path: Path, poll: str, feeds: str) -> tuple[Path, scheduler.Runtime]:
    """A config with no rules, these poll settings and feeds; the stages built from it."""
    (tmp_path / "w.yaml").write_text("rules: []\n")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path}/m.db\nwatchlist: {tmp_path / 'w.yaml'}\n"
        f"poll: {{allow_private_networks: true, jitter: 0s, {poll}}}\nfeeds:\n{feeds}"
    )
    settings = load_settings(config)
    return config, scheduler.build(settings, load_rules(settings))


async def test_a_failing_feed_backs_off_and_recovers(
    tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    feed_server.routes["/f.xml"] = Route(status=503)
    config, runtime = start(
        tmp_path, "interval: 1m", f"  - {{id: f, url: '{feed_server.url('/f.xml')}'}}\n"
    )
    gaps = []
    try:
        for _ in range(3):
            [outcome] = (await pipeline.poll(runtime.ctx, everything=True)).feeds
            assert not outcome.ok and outcome.status == 503
            with db.session(runtime.engine) as s:
                row = s.get(Feed, "f")
                assert row is not None and row.next_due_at and row.last_fetch_at
                gaps.append((row.next_due_at - row.last_fetch_at).total_seconds())
        assert gaps == [60, 120, 240]  # 1, 2, 4 intervals
        capsys.readouterr()
        assert run_cli(["--config", str(config), "feeds"]) == 0
        table = capsys.readouterr().out
        assert "503" in table and "HTTP 503" in table and "│ 3 " in table

        feed_server.routes["/f.xml"] = Route(b"<rss version='2.0'><channel/></rss>")
        [outcome] = (await pipeline.poll(runtime.ctx, everything=True)).feeds
        assert outcome.ok
        with db.session(runtime.engine) as s:
            row = s.get(Feed, "f")
            assert row is not None and row.consecutive_errors == 0 and row.last_error is None
    finally:
        await runtime.aclose()


async def test_a_feed_waiting_for_a_fetch_slot_is_not_leased_yet(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """With one fetch per host, a feed queued behind a slow one is claimed only when its own
    fetch starts, so its lease cannot run out while it waits (and another process fetch it)."""
    body = b"<rss version='2.0'><channel><title>t</title></channel></rss>"
    feed_server.routes["/slow.xml"] = Route(body, drip=0.02)  # about 1.2 s each
    feed_server.routes["/next.xml"] = Route(body, drip=0.02)
    _config, runtime = start(
        tmp_path,
        "per_host: 1",
        f"  - {{id: slow, url: '{feed_server.url('/slow.xml')}'}}\n"
        f"  - {{id: next, url: '{feed_server.url('/next.xml')}'}}\n",
    )
    try:
        cycle = asyncio.create_task(pipeline.poll(runtime.ctx))
        deadline = time.monotonic() + 10
        while not feed_server.requests:  # one of the two is being fetched
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)  # let the cycle run; the loop is bounded by the deadline
        first = feed_server.requests[0].path.strip("/").removesuffix(".xml")
        with db.session(runtime.engine) as s:
            waiting = s.get(Feed, "next" if first == "slow" else "slow")
            assert waiting is not None and waiting.next_due_at is not None
            assert waiting.next_due_at <= pipeline.utcnow()  # still due: not claimed yet
        report = await cycle
        assert sorted(f.feed_id for f in report.feeds if f.ok) == ["next", "slow"]
    finally:
        await runtime.aclose()
