"""Crash safety: the daemon killed with SIGKILL at the worst moments, then restarted. Every
alert is delivered, and no (rule, item) reaches a channel twice, except a delivery that was in
flight, which may repeat with the same webhook-id (at least once, documented)."""

from __future__ import annotations

from pathlib import Path

from tests.feedserver import FeedServer, Route
from tests.servers import Reply, WebhookReceiver
from tests.test_delivery import SECRET, rss
from tests.test_rule_lifecycle import Daemon


def config_for(tmp_path: Path, server: FeedServer, hook: WebhookReceiver) -> Path:
    (tmp_path / "watchlist.yaml").write_text(
        "rules:\n  - {id: dprk, query: North Korea + missile}\n"
    )
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path}/m.db\nwatchlist: {tmp_path / 'watchlist.yaml'}\n"
        "poll: {allow_private_networks: true, interval: 1s, jitter: 0s}\n"
        "server: {listen: '127.0.0.1:0'}\n"
        f"feeds:\n  - {{id: a, url: '{server.url('/a.xml')}', backfill: true}}\n"
        f"channels:\n  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}, timeout: 1s}}\n"
    )
    return config


def items(n: int) -> bytes:
    return rss(*((f"Launch {i}", f"https://example.org/{i}") for i in range(n)))


def test_killed_after_alerts_are_written(tmp_path: Path, feed_server: FeedServer) -> None:
    """Items and alerts are committed together; the first attempt fails (503, Retry-After);
    the process dies before the retry. After restart each alert is delivered once."""
    feed_server.routes["/a.xml"] = Route(items(3))
    busy = Reply(503, {"Retry-After": "1"})
    with WebhookReceiver(secret=SECRET, responses=[busy, busy, busy]) as hook:
        config = config_for(tmp_path, feed_server, hook)
        first = Daemon(config)
        first.wait_event("delivery_retry")
        first.proc.kill()
        first.proc.wait()
        second = Daemon(config)
        try:
            delivered = hook.wait_for(6, timeout=30)
        finally:
            assert second.stop() == 0
    ok = [r for r in delivered if r.reply == 200]
    assert all(r.verified for r in delivered)
    ids = [r.json["item"]["title"] for r in ok]
    assert sorted(ids) == ["Launch 0", "Launch 1", "Launch 2"]  # each once


def test_killed_while_a_delivery_is_in_flight(tmp_path: Path, feed_server: FeedServer) -> None:
    """The receiver holds the request past the process's death. After restart the delivery
    is repeated once its lease ends, with the same webhook-id; nothing else repeats."""
    feed_server.routes["/a.xml"] = Route(items(1))
    with WebhookReceiver(secret=SECRET, responses=[Reply(200, delay=5)]) as hook:
        config = config_for(tmp_path, feed_server, hook)
        first = Daemon(config)
        [in_flight] = hook.wait_for(1, timeout=20)
        first.proc.kill()
        first.proc.wait()
        second = Daemon(config)
        try:
            both = hook.wait_for(2, timeout=30)
        finally:
            assert second.stop() == 0
    assert both[1].headers["webhook-id"] == in_flight.headers["webhook-id"]
    assert both[1].reply == 200 and both[1].verified
    assert len(hook.requests) == 2


def test_killed_mid_poll_loses_nothing(tmp_path: Path, feed_server: FeedServer) -> None:
    """Killed as soon as the first feed is stored (items and alerts in one transaction):
    after restart, a new item alerts once and the old ones are not repeated."""
    feed_server.routes["/a.xml"] = Route(items(2))
    with WebhookReceiver(secret=SECRET) as hook:
        config = config_for(tmp_path, feed_server, hook)
        first = Daemon(config)
        first.wait_event("feed_polled")
        first.proc.kill()
        first.proc.wait()
        feed_server.routes["/a.xml"] = Route(items(3))
        second = Daemon(config)
        try:
            got = hook.wait_for(3, timeout=30)
        finally:
            assert second.stop() == 0
    titles = sorted(r.json["item"]["title"] for r in got)
    assert titles == ["Launch 0", "Launch 1", "Launch 2"]
    assert len(hook.requests) == 3
