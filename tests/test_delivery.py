"""Delivery that can be trusted, with real receivers on 127.0.0.1: retries with growing
backoff and one webhook-id, dead deliveries kept visible, story dedup, digests and bursts."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from monitor import db, delivery, pipeline, scheduler
from monitor.cli import run_cli
from monitor.config import load_rules
from monitor.models import Alert, Delivery
from monitor.outcomes import DeliveryOutcome
from monitor.settings import load_settings
from tests.feedserver import FeedServer, Route
from tests.servers import SMTPServer, WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FAST = delivery.RetryPolicy(base=0.05, cap=1.0, max_attempts=6)


def rss(*items: tuple[str, str]) -> bytes:
    """items: (title, link)."""
    body = "".join(
        f"<item><title>{t}</title><link>{link}</link><guid>{link}#{t}</guid>"
        f"<description>{t}. North Korea fired a missile, officials said.</description></item>"
        for t, link in items
    )
    return (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>w</title>"
        f"<link>https://example.org/</link><description>d</description>{body}</channel></rss>"
    ).encode()


def write_config(tmp_path: Path, feeds: str, channels: str, rules: str | None = None) -> Path:
    (tmp_path / "watchlist.yaml").write_text(
        rules
        or "rules:\n  - {id: dprk, name: DPRK missile, query: North Korea + missile,"
        " severity: high}\n"
    )
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: sqlite:///{tmp_path}/m.db\nwatchlist: {tmp_path / 'watchlist.yaml'}\n"
        "poll: {allow_private_networks: true}\n"
        f"feeds:\n{feeds}channels:\n{channels}"
    )
    return config


async def runtime_for(config: Path) -> AsyncIterator[scheduler.Runtime]:
    settings = load_settings(config)
    runtime = scheduler.build(settings, load_rules(settings))
    runtime.outbox.retry = FAST
    try:
        yield runtime
    finally:
        await runtime.aclose()


async def deliver_until(runtime: scheduler.Runtime, done: object, timeout: float = 15.0) -> None:
    """Run delivery passes until done() is true; the deadline fails the test."""
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "deliveries did not settle in time"
        await delivery.deliver(runtime.outbox)
        await asyncio.sleep(0.02)  # let the backoff come due; not a wait for the result


@pytest.fixture
def served(feed_server: FeedServer) -> FeedServer:
    feed_server.routes["/a.xml"] = Route(rss(("Launch", "https://example.org/launch")))
    return feed_server


def feed_line(server: FeedServer, fid: str, path: str) -> str:
    return f"  - {{id: {fid}, url: '{server.url(path)}', backfill: true}}\n"


async def test_retries_keep_the_webhook_id_and_back_off(tmp_path: Path, served: FeedServer) -> None:
    with WebhookReceiver(secret=SECRET, responses=[500, 500, 500, 200]) as hook:
        config = write_config(
            tmp_path,
            feed_line(served, "a", "/a.xml"),
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n",
        )
        async for runtime in runtime_for(config):
            waits: list[float] = []

            def note(o: DeliveryOutcome, waits: list[float] = waits) -> None:
                if o.next_attempt is not None:
                    waits.append((o.next_attempt - pipeline.utcnow()).total_seconds())

            runtime.outbox.on_delivery.append(note)
            await pipeline.poll(runtime.ctx)
            await deliver_until(runtime, lambda: len(hook.requests) >= 4)
            await delivery.deliver(runtime.outbox)  # nothing more is due
    requests = hook.requests
    assert len(requests) == 4 and [r.reply for r in requests] == [500, 500, 500, 200]
    assert all(r.verified for r in requests)
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert waits[0] < waits[1] < waits[2], waits  # backoff grows


async def test_a_gone_receiver_is_dead_at_once_and_visible(
    tmp_path: Path, served: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    with WebhookReceiver(secret=SECRET, default=410) as hook:
        config = write_config(
            tmp_path,
            feed_line(served, "a", "/a.xml"),
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n",
        )
        async for runtime in runtime_for(config):
            await pipeline.poll(runtime.ctx)
            report = await delivery.deliver(runtime.outbox)
            assert report.dead == 1
            await delivery.deliver(runtime.outbox)
        assert len(hook.requests) == 1
    capsys.readouterr()
    assert run_cli(["--config", str(config), "alerts"]) == 0
    out = capsys.readouterr().out
    assert "ops: dead (1 attempt)" in out and "HTTP 410" in out
    alert_id = out.split("alrt_")[1].split()[0]
    assert run_cli(["--config", str(config), "alerts", "retry", f"alrt_{alert_id}"]) == 0


async def test_the_same_story_in_three_feeds_alerts_once(
    tmp_path: Path, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    story = ("Launch", "https://example.org/story?utm_source=a")
    for name, extra in (("a", ""), ("b", "&utm_medium=b"), ("c", "#top")):
        feed_server.routes[f"/{name}.xml"] = Route(rss((story[0], story[1] + extra)))
    with WebhookReceiver(secret=SECRET) as hook:
        feeds = "".join(feed_line(feed_server, n, f"/{n}.xml") for n in "abc")
        config = write_config(
            tmp_path, feeds, f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n"
        )
        async for runtime in runtime_for(config):
            await pipeline.poll(runtime.ctx)
            await pipeline.poll(runtime.ctx, everything=True)
            await delivery.deliver(runtime.outbox)
            with db.session(runtime.engine) as s:
                [alert] = s.exec(select(Alert)).all()
        assert len(hook.requests) == 1
    assert len(alert.also_reported_by) == 2
    capsys.readouterr()
    assert run_cli(["--config", str(config), "alerts"]) == 0
    listed = capsys.readouterr().out
    assert sum(f"+ {f}" in listed for f in "abc") == 2, listed  # the other feeds, as sources
    assert {alert.also_reported_by[0], alert.also_reported_by[1]} <= {"a", "b", "c"}


def many_items(n: int) -> bytes:
    return rss(*((f"Launch {i}", f"https://example.org/launch/{i}") for i in range(n)))


async def test_a_digest_channel_sends_one_email_for_500_alerts(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/many.xml"] = Route(many_items(500))
    with SMTPServer() as smtp:
        config = write_config(
            tmp_path,
            feed_line(feed_server, "many", "/many.xml"),
            "  mail:\n    type: email\n    to: [a@example.org]\n    from: m@example.org\n"
            f"    digest: 3s\n"
            f"    smtp: {{host: {smtp.host}, port: {smtp.port}, starttls: false}}\n",
        )
        async for runtime in runtime_for(config):
            report = await pipeline.poll(runtime.ctx)
            assert report.alerts == 500
            first = await delivery.deliver(runtime.outbox)
            assert first.sent == 0  # held for the window
            await deliver_until(runtime, lambda: len(smtp.messages) >= 1)
            await delivery.deliver(runtime.outbox)
            with db.session(runtime.engine) as s:
                rows = s.exec(select(Delivery)).all()
        [mail] = smtp.messages
    assert all(d.status == "sent" and d.digest_id for d in rows)
    assert len({d.digest_id for d in rows}) == 1
    text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert all(f"Launch {i}" in text for i in range(500))
    assert "500" in mail.message["Subject"]


async def test_a_burst_becomes_one_message_not_500(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.routes["/many.xml"] = Route(many_items(500))
    with WebhookReceiver(secret=SECRET) as hook:
        config = write_config(
            tmp_path,
            feed_line(feed_server, "many", "/many.xml"),
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}, burst: 10}}\n",
        )
        async for runtime in runtime_for(config):
            await pipeline.poll(runtime.ctx)
            await delivery.deliver(runtime.outbox)
        [request] = hook.requests
    assert request.verified and request.json["type"] == "digest"
    assert request.json["count"] == 500 and len(request.json["alerts"]) == 500
    assert request.json["window"] is None  # a burst, not a digest window


async def test_a_webhook_sends_one_post_per_alert_unless_it_sets_burst(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """Issue 10 #12: a SIEM expects one event per alert; 0.1.0 turned more than 10 alerts due
    at once into one digest on every channel, webhooks included."""
    feed_server.routes["/many.xml"] = Route(many_items(30))
    with WebhookReceiver(secret=SECRET) as hook:
        config = write_config(
            tmp_path,
            feed_line(feed_server, "many", "/many.xml"),
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n",
        )
        async for runtime in runtime_for(config):
            await pipeline.poll(runtime.ctx)
            await delivery.deliver(runtime.outbox)
        requests = hook.wait_for(30)
    assert {r.json["type"] for r in requests} == {"alert"}
    assert len({r.headers["webhook-id"] for r in requests}) == 30


def test_an_apprise_url_apprise_cannot_use_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path,
        "",
        "  chat:\n    type: apprise\n    urls: ['json://127.0.0.1:9/ok', 'nosuchservice://tok3n']\n",
    )
    config.write_text(config.read_text().replace("feeds:\n", "feeds: []\n"))
    assert run_cli(["--config", str(config), "check"]) == 2
    err = capsys.readouterr().err
    assert f"{config}:" in err and "channels.chat.urls[1]" in err
    assert "tok3n" not in err  # the URL holds a token: never shown


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_smtp_server_that_comes_back_gets_the_email_once(
    tmp_path: Path, served: FeedServer
) -> None:
    port = free_port()  # nothing listens there yet: the first attempts are refused
    config = write_config(
        tmp_path,
        feed_line(served, "a", "/a.xml"),
        "  mail:\n    type: email\n    to: [a@example.org]\n    from: m@example.org\n"
        f"    smtp: {{host: 127.0.0.1, port: {port}, starttls: false}}\n",
    )
    async for runtime in runtime_for(config):
        await pipeline.poll(runtime.ctx)
        refused = 0
        deadline = time.monotonic() + 10
        while refused < 2:  # two attempts refused, the second after its backoff
            assert time.monotonic() < deadline
            refused += (await delivery.deliver(runtime.outbox)).failed
        with SMTPServer(port=port) as smtp:
            await deliver_until(runtime, lambda: len(smtp.messages) >= 1)
            for _ in range(3):
                await delivery.deliver(runtime.outbox)
            [mail] = smtp.messages
        with db.session(runtime.engine) as s:
            [row] = s.exec(select(Delivery)).all()
    assert mail.message["Subject"] == "[HIGH] DPRK missile: Launch"
    assert row.status == "sent" and row.attempts >= 3


async def test_a_rate_limit_holds_alerts_then_sends_them_as_one(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/a.xml"] = Route(many_items(1))
    with WebhookReceiver(secret=SECRET) as hook:
        config = write_config(
            tmp_path,
            feed_line(feed_server, "a", "/a.xml"),
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}, rate_limit: 2}}\n",
        )
        async for runtime in runtime_for(config):
            for n in (1, 2, 7):  # 1 new alert, then 1, then 5
                feed_server.routes["/a.xml"] = Route(many_items(n))
                await pipeline.poll(runtime.ctx, everything=True)
                await delivery.deliver(runtime.outbox)
            assert [r.json["type"] for r in hook.requests] == ["alert", "alert"]  # limit: 2/h
            with db.session(runtime.engine) as s:  # an hour passes
                for d in s.exec(select(Delivery).where(Delivery.status == "sent")).all():
                    d.sent_at = pipeline.utcnow() - dt.timedelta(hours=2)
                    s.add(d)
                s.commit()
            await delivery.deliver(runtime.outbox)
        assert len(hook.requests) == 3
    held = hook.requests[2].json
    assert held["type"] == "digest" and held["count"] == 5


async def test_once_delivers_everything_due_not_the_first_batch(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """`monitor once` is "match, deliver, exit": more alerts than one claim batch all go."""
    feed_server.routes["/many.xml"] = Route(many_items(12))
    with WebhookReceiver(secret=SECRET) as hook:
        config = write_config(
            tmp_path,
            feed_line(feed_server, "many", "/many.xml"),
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n",
        )
        async for runtime in runtime_for(config):
            await pipeline.poll(runtime.ctx)
            report = await delivery.deliver(runtime.outbox, limit=5)
        assert report.sent == 12 and len(hook.requests) == 12
