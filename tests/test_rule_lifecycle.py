"""Rules over time: hot reload under a running daemon, new rules and old news, backfill
windows, cooldowns. Real parts: the `monitor` command, a feed server, a webhook receiver."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from monitor.cli import run_cli
from tests.feedserver import FeedServer, Route
from tests.servers import WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def feed(*titles: str) -> bytes:
    items = "".join(
        f"<item><title>{t}</title><link>https://example.org/{abs(hash(t))}</link>"
        f"<guid>{t}</guid><description>{t}, says the wire.</description></item>"
        for t in titles
    )
    return (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>w</title>"
        f"<link>https://example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def setup(tmp_path: Path, server: FeedServer, hook: WebhookReceiver, rules: str) -> Path:
    (tmp_path / "watchlist.yaml").write_text(rules)
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path}/m.db\n"
        f"watchlist: {tmp_path / 'watchlist.yaml'}\n"
        "poll: {allow_private_networks: true, interval: 1s, jitter: 0s}\n"
        "server: {listen: '127.0.0.1:0'}\n"
        f"feeds:\n  - {{id: wire, url: '{server.url('/wire.xml')}'}}\n"
        f"channels:\n  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n"
    )
    return config


class Daemon:
    """`monitor run` in its own process, its JSON log lines readable with a deadline."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "--config", str(config), "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ),
        )
        self.lines: queue.Queue[dict[str, object]] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                self.lines.put({"event": "raw", "line": line})

    def wait_event(self, name: str, timeout: float = 20) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if event.get("event") == name:
                return event
        raise AssertionError(f"no {name!r} event within {timeout}s")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def test_edits_take_effect_without_restart_and_bad_edits_keep_the_old_rules(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/wire.xml"] = Route(feed("alpha one"))
    with WebhookReceiver(secret=SECRET) as hook:
        config = setup(tmp_path, feed_server, hook, "rules:\n  - {id: alpha, query: alpha}\n")
        daemon = Daemon(config)
        try:
            daemon.wait_event("started")
            daemon.wait_event("feed_polled")  # first poll: recorded, no alert (no flood)

            rules = tmp_path / "watchlist.yaml"
            rules.write_text(
                "rules:\n  - {id: alpha, query: alpha}\n  - {id: bravo, query: bravo}\n"
            )
            reloaded = daemon.wait_event("watchlist_reloaded")
            assert reloaded["activated"] == ["bravo"]
            feed_server.routes["/wire.xml"] = Route(feed("alpha one", "bravo one"))
            [first] = hook.wait_for(1, timeout=20)
            assert first.verified and first.json["rule"]["id"] == "bravo"

            rules.write_text("rules:\n  - {id: bravo, query: 'bravo +'}\n")  # broken
            invalid = daemon.wait_event("watchlist_invalid")
            problems = invalid["problems"]
            assert isinstance(problems, list) and problems[0].startswith(f"{rules}:2:")
            feed_server.routes["/wire.xml"] = Route(feed("alpha one", "bravo one", "alpha two"))
            second = hook.wait_for(2, timeout=20)[1]
            assert second.json["rule"]["id"] == "alpha"  # the old rules are still in force
            assert second.json["item"]["title"] == "alpha two"
        finally:
            code = daemon.stop()
        assert code == 0
        assert len(hook.requests) == 2


def once(config: Path) -> None:
    assert run_cli(["--config", str(config), "once", "--all"]) == 0


def test_a_new_rule_ignores_old_news_unless_it_asks_for_backfill(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/wire.xml"] = Route(feed("alpha one", "bravo one", "charlie one"))
    with WebhookReceiver(secret=SECRET) as hook:
        config = setup(tmp_path, feed_server, hook, "rules:\n  - {id: alpha, query: alpha}\n")
        once(config)  # a new feed: items recorded without alerts
        assert hook.requests == []
        (tmp_path / "watchlist.yaml").write_text(
            "rules:\n  - {id: alpha, query: alpha}\n"
            "  - {id: bravo, query: bravo}\n"  # new: old items are not news for it
            "  - {id: charlie, query: charlie, backfill: 24h}\n"  # new, with a backfill window
        )
        # An old item edited after the new rules arrived is still old news for them.
        feed_server.routes["/wire.xml"] = Route(
            feed("alpha one", "bravo one", "charlie one").replace(
                b"bravo one, says", b"bravo one (updated), says"
            )
        )
        once(config)
        once(config)  # the backfill runs once per version of the rule
        [request] = hook.wait_for(1)
        assert request.json["rule"]["id"] == "charlie"
        assert request.json["item"]["title"] == "charlie one"
        assert len(hook.requests) == 1


def test_a_cooldown_allows_one_alert_per_window(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.routes["/wire.xml"] = Route(feed("intro"))
    with WebhookReceiver(secret=SECRET) as hook:
        config = setup(
            tmp_path, feed_server, hook, "rules:\n  - {id: alpha, query: alpha, cooldown: 6h}\n"
        )
        once(config)
        feed_server.routes["/wire.xml"] = Route(feed("intro", "alpha one", "alpha two"))
        once(config)
        feed_server.routes["/wire.xml"] = Route(feed("intro", "alpha one", "alpha two", "alpha 3"))
        once(config)
        [request] = hook.wait_for(1)
        assert request.json["rule"]["id"] == "alpha"
        assert len(hook.requests) == 1


def test_notify_must_name_a_channel(tmp_path: Path, feed_server: FeedServer) -> None:
    with WebhookReceiver(secret=SECRET) as hook:
        config = setup(
            tmp_path,
            feed_server,
            hook,
            "rules:\n  - id: alpha\n    query: alpha\n    notify: [ops, opps]\n",
        )
        assert run_cli(["--config", str(config), "check"]) == 2
