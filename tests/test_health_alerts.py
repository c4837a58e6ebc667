"""No feed fails silently: each change of a feed's health state (failing, stale, ok again)
reaches the `health_alerts` channels once, signed, through the outbox, whatever the number of
polls and across restarts. Real parts: the feed server, a verifying webhook receiver, an SMTP
server, SQLite files and PostgreSQL; time moves by an injected clock, never by sleeping."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from monitor import db, delivery, pipeline, scheduler, schema, store, storing
from monitor.cli import run_cli
from monitor.config import load_rules
from monitor.models import Feed, FeedHealth, utcnow
from monitor.settings import load_settings
from tests.feedserver import FeedServer, Route
from tests.servers import ReceivedRequest, SMTPServer, WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
EMPTY = b"<rss version='2.0'><channel><title>Wire</title></channel></rss>"


def rss(*items: tuple[str, dt.datetime], title: str = "Wire") -> bytes:
    """A feed of (guid, published) items."""
    body = "".join(
        f"<item><guid>{g}</guid><title>Story {g}</title><link>https://news.example.org/{g}</link>"
        f"<pubDate>{email.utils.format_datetime(when)}</pubDate></item>"
        for g, when in items
    )
    return f"<rss version='2.0'><channel><title>{title}</title>{body}</channel></rss>".encode()


class Clock:
    """The injected time: moves only when the test says so."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


def write_config(tmp_path: Path, url: str, feeds: str, channels: str, poll: str = "") -> Path:
    (tmp_path / "w.yaml").write_text("rules: []\n")
    config = tmp_path / "monitor.yaml"
    config.write_text(
        f"database: {url}\nwatchlist: {tmp_path / 'w.yaml'}\n"
        f"poll: {{allow_private_networks: true, jitter: 0s{poll}}}\n"
        f"feeds:\n{feeds}channels:\n{channels}health_alerts: [ops]\n"
    )
    return config


def health(requests: list[ReceivedRequest]) -> list[tuple[str, str, str]]:
    """(feed, previous, state) of each feed_health message received, in order; each must
    carry a valid Standard Webhooks signature."""
    out = []
    for r in requests:
        assert r.verified, r.verify_error
        assert r.json["type"] == "feed_health"
        out.append((r.json["feed"]["id"], r.json["previous"], r.json["state"]))
    return out


def once(config: Path) -> None:
    assert run_cli(["--config", str(config), "once", "--all"]) == 0


def test_a_failing_feed_is_told_once_and_its_recovery_once_across_restarts(
    tmp_path: Path, db_url: str, feed_server: FeedServer
) -> None:
    """Acceptance 1. Every `once` is a process of its own (build, poll, deliver, close): a
    restart between each poll. A fine feed beside the broken one sends nothing."""
    feed_server.routes["/broken.xml"] = Route(rss(("a", utcnow())))
    feed_server.routes["/fine.xml"] = Route(rss(("b", utcnow())))
    with WebhookReceiver(secret=SECRET) as hook:
        config = write_config(
            tmp_path,
            db_url,
            f"  - {{id: broken, url: '{feed_server.url('/broken.xml')}'}}\n"
            f"  - {{id: fine, url: '{feed_server.url('/fine.xml')}'}}\n",
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n",
            ", failing_after: 3",
        )
        once(config)
        feed_server.routes["/broken.xml"] = Route(status=500)
        for _ in range(6):  # six failed polls, six restarts
            once(config)
        assert health(hook.requests) == [("broken", "ok", "failing")]
        [told] = hook.requests
        assert told.json["consecutive_errors"] == 3
        assert told.json["last_status"] == 500 and told.json["last_error"] == "HTTP 500"
        assert told.json["feed"]["url"] == feed_server.url("/broken.xml")
        assert told.json["feed"]["title"] == "Wire"
        assert told.json["last_success_at"] is not None
        assert told.headers["webhook-id"] == told.json["id"]

        feed_server.routes["/broken.xml"] = Route(rss(("a", utcnow()), ("c", utcnow())))
        for _ in range(3):  # recovered, and then polled fine twice more
            once(config)
        assert health(hook.requests) == [("broken", "ok", "failing"), ("broken", "failing", "ok")]
        recovered = hook.requests[1].json
        assert recovered["consecutive_errors"] == 0 and recovered["last_error"] is None
    engine = db.make_engine(db_url)
    with db.session(engine) as s:
        rows = {f.id: f.health for f in s.exec(sa.select(Feed)).scalars()}
        changes = s.exec(sa.select(FeedHealth)).scalars().all()
    engine.dispose()
    assert rows == {"broken": "ok", "fine": "ok"}
    assert [(c.previous, c.state) for c in changes] == [("ok", "failing"), ("failing", "ok")]


async def test_a_change_recorded_before_a_crash_is_delivered_after_the_restart(
    tmp_path: Path, sqlite_url: str, feed_server: FeedServer
) -> None:
    """The change and its delivery are committed with the feed's new state: a process that
    stops before sending leaves it to the next one, which sends it once."""
    feed_server.routes["/f.xml"] = Route(status=503)
    with WebhookReceiver(secret=SECRET) as hook:
        config = write_config(
            tmp_path,
            sqlite_url,
            f"  - {{id: f, url: '{feed_server.url('/f.xml')}'}}\n",
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n",
            ", failing_after: 2",
        )
        settings = load_settings(config)
        runtime = scheduler.build(settings, load_rules(settings))
        try:
            for _ in range(2):
                await pipeline.poll(runtime.ctx, everything=True)  # polled; never delivered
        finally:
            await runtime.aclose()
        assert hook.requests == []
        # the next process: polls (still failing: no new change) and delivers
        await scheduler.run_once(settings, load_rules(settings), everything=True)
        assert health(hook.requests) == [("f", "ok", "failing")]
        await scheduler.run_once(settings, load_rules(settings), everything=True)
        assert len(hook.requests) == 1


async def test_a_feed_quiet_far_past_its_cadence_is_stale_once(
    tmp_path: Path, db_url: str, feed_server: FeedServer
) -> None:
    """Acceptance 2. A feed that posts hourly goes quiet: stale once a day has passed (5 x 1 h
    is less than the one-day floor), told once however often it is polled; ok again at its
    next new item."""
    start = utcnow()
    clock = Clock(start)
    hourly = [(f"h{n}", start - dt.timedelta(hours=n)) for n in range(6)]
    feed_server.routes["/hourly.xml"] = Route(rss(*hourly))
    with WebhookReceiver(secret=SECRET) as hook:
        config = write_config(
            tmp_path,
            db_url,
            f"  - {{id: hourly, url: '{feed_server.url('/hourly.xml')}'}}\n",
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n",
        )
        settings = load_settings(config)
        runtime = scheduler.build(settings, load_rules(settings))
        runtime.ctx.clock = runtime.outbox.clock = clock

        async def cycle() -> None:
            await pipeline.poll(runtime.ctx, everything=True)
            await delivery.deliver(runtime.outbox)

        try:
            await cycle()  # the first poll: its items' dates say "hourly"
            for _ in range(23):  # quiet, but under a day: not stale yet
                clock.advance(hours=1)
                await cycle()
            assert hook.requests == []
            clock.advance(hours=1, minutes=1)
            await cycle()
            assert health(hook.requests) == [("hourly", "ok", "stale")]
            stale = hook.requests[0].json
            assert stale["since"] == stale["created_at"]
            assert stale["last_new_at"] is not None
            for _ in range(10):  # still quiet: nothing more
                clock.advance(hours=2)
                await cycle()
            assert len(hook.requests) == 1
            feed_server.routes["/hourly.xml"] = Route(rss(("new", clock.now), *hourly))
            clock.advance(minutes=5)
            await cycle()
            assert health(hook.requests) == [
                ("hourly", "ok", "stale"),
                ("hourly", "stale", "ok"),
            ]
        finally:
            await runtime.aclose()


def test_an_empty_feed_is_not_a_failure_and_a_304_after_a_bad_parse_proves_nothing(
    tmp_path: Path, sqlite_url: str, feed_server: FeedServer
) -> None:
    feed_server.routes["/empty.xml"] = Route(EMPTY)
    feed_server.routes["/f.xml"] = Route(b"<html><body>not a feed</body></html>")
    with WebhookReceiver(secret=SECRET) as hook:
        config = write_config(
            tmp_path,
            sqlite_url,
            f"  - {{id: empty, url: '{feed_server.url('/empty.xml')}'}}\n"
            f"  - {{id: f, url: '{feed_server.url('/f.xml')}'}}\n",
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n",
            ", failing_after: 2",
        )
        for _ in range(2):
            once(config)
        assert health(hook.requests) == [("f", "ok", "failing")]
        feed_server.routes["/f.xml"] = Route(status=304)  # "not modified": the broken body
        once(config)
        engine = db.make_engine(sqlite_url)
        with db.session(engine) as s:
            row = s.get(Feed, "f")
            assert row is not None
            assert (row.health, row.consecutive_errors, row.last_status) == ("failing", 2, 304)
            assert row.last_error_kind == "ParseError"
            empty = s.get(Feed, "empty")
            assert empty is not None and empty.health == "ok" and empty.consecutive_errors == 0
        engine.dispose()
        assert len(hook.requests) == 1
        feed_server.routes["/f.xml"] = Route(EMPTY)  # a real feed again
        once(config)
        assert health(hook.requests) == [("f", "ok", "failing"), ("f", "failing", "ok")]


def test_an_email_health_message_has_the_specs_subject(
    tmp_path: Path, sqlite_url: str, feed_server: FeedServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Acceptance 4: `[FEED FAILING] gs-wmd: HTTP 500`, then `[FEED RECOVERED] …`; `monitor
    feeds` shows the state, the last error and the current interval."""
    feed_server.routes["/gs.xml"] = Route(status=500)
    with SMTPServer() as smtp:
        config = write_config(
            tmp_path,
            sqlite_url,
            f"  - {{id: gs-wmd, url: '{feed_server.url('/gs.xml')}', interval: 5m}}\n",
            "  ops:\n    type: email\n    to: [analyst@example.org]\n"
            "    from: monitor@example.org\n"
            f"    smtp: {{host: {smtp.host}, port: {smtp.port}, starttls: false}}\n",
        )
        for _ in range(3):
            once(config)
        [mail] = smtp.wait_for(1)
        assert mail.message["Subject"] == "[FEED FAILING] gs-wmd: HTTP 500"
        text = mail.message.get_body(("plain",))
        assert text is not None and re.search(r"Errors in a row:\s+3\r?\n", text.get_content())
        capsys.readouterr()
        assert run_cli(["--config", str(config), "feeds"]) == 0
        table = capsys.readouterr().out
        assert "failing" in table and "HTTP 500" in table and "5m" in table

        feed_server.routes["/gs.xml"] = Route(EMPTY)
        once(config)
        [_, back] = smtp.wait_for(2)
        assert back.message["Subject"] == "[FEED RECOVERED] gs-wmd: ok again (was failing)"
        capsys.readouterr()
        assert run_cli(["--config", str(config), "feeds"]) == 0
        table = capsys.readouterr().out
        assert "ok" in table and "failing" not in table


def test_health_alerts_must_name_a_channel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feeds = "  - {id: f, url: 'https://news.example.org/f.xml'}\n"
    config = write_config(tmp_path, "sqlite:///x.db", feeds, "  console: {type: log}\n")
    assert run_cli(["--config", str(config), "check"]) == 2
    err = capsys.readouterr().err
    assert f"{config}:8:" in err and "health_alerts: no channel named 'ops'" in err


def test_an_upgraded_database_does_not_tell_an_old_failure_again(
    tmp_path: Path, db_url: str, feed_server: FeedServer
) -> None:
    """A database of the previous release (revision 0004) with a feed already failing: the
    upgrade tells nothing, the feed failing on tells nothing, its recovery is told once."""
    engine = db.make_engine(db_url)
    with engine.connect() as conn:
        cfg = schema._config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(
            sa.text(
                "INSERT INTO feed (id, url, initialized, consecutive_errors, last_item_count, "
                "total_items, enabled, health, last_fetch_at, last_error, last_status) VALUES "
                "('old', :url, true, 7, 0, 0, true, 'failing', :t, 'HTTP 502', 502)"
            ),
            {"url": feed_server.url("/old.xml"), "t": dt.datetime(2026, 11, 1)},
        )
        conn.commit()
    engine.dispose()
    feed_server.routes["/old.xml"] = Route(status=502)
    with WebhookReceiver(secret=SECRET) as hook:
        config = write_config(
            tmp_path,
            db_url,
            f"  - {{id: old, url: '{feed_server.url('/old.xml')}'}}\n",
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}}}\n",
        )
        once(config)
        once(config)
        assert hook.requests == []
        feed_server.routes["/old.xml"] = Route(EMPTY)
        once(config)
        assert health(hook.requests) == [("old", "failing", "ok")]


def test_a_digest_channel_sends_a_health_change_at_once_and_alone(
    tmp_path: Path, sqlite_url: str, feed_server: FeedServer
) -> None:
    """A channel that holds alerts for an hourly digest still tells a feed's failure at once,
    as its own feed_health POST, never folded into the digest."""
    feed_server.routes["/f.xml"] = Route(status=500)
    feed_server.routes["/g.xml"] = Route(status=404)
    with WebhookReceiver(secret=SECRET) as hook:
        config = write_config(
            tmp_path,
            sqlite_url,
            f"  - {{id: f, url: '{feed_server.url('/f.xml')}'}}\n"
            f"  - {{id: g, url: '{feed_server.url('/g.xml')}'}}\n",
            f"  ops: {{type: webhook, url: '{hook.url}', secret: {SECRET}, digest: 1h, "
            "burst: 1, rate_limit: 1}\n",
            ", failing_after: 1",
        )
        once(config)
        assert sorted(health(hook.requests)) == [("f", "ok", "failing"), ("g", "ok", "failing")]
        assert {r.json["last_error"] for r in hook.requests} == {"HTTP 500", "HTTP 404"}


def test_revision_0005_goes_down_and_up_again_keeping_the_alerts_deliveries(db_url: str) -> None:
    """Downgrading to 0004 drops the health messages (and only their deliveries); upgrading
    again restores the schema the models describe."""
    engine = db.make_engine(db_url)
    schema.upgrade(engine)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO feed (id, url, initialized, consecutive_errors, "
                "last_item_count, total_items, enabled, health) VALUES "
                "('f', 'u', true, 0, 0, 0, true, 'ok')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO item (id, feed_id, guid, title, summary, content, categories, "
                "content_hash) VALUES (1, 'f', 'g', 't', '', '', '[]', 'h')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO alert (id, rule_id, item_id, created_at, rule_name, severity, "
                "terms, snippet, also_reported_by, held_back) VALUES "
                "('a1', 'r', 1, :t, 'r', 'high', '[]', '', '[]', 0)"
            ),
            {"t": now.replace(tzinfo=None)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO feedhealth (id, feed_id, state, previous, consecutive_errors, "
                "feed_url) VALUES ('h1', 'f', 'failing', 'ok', 3, 'u')"
            )
        )
        for column, ref in (("alert_id", "a1"), ("health_id", "h1")):
            conn.execute(
                sa.text(
                    f"INSERT INTO delivery ({column}, channel, status, attempts) "
                    f"VALUES ('{ref}', 'ops', 'pending', 0)"
                )
            )
    with schema._locked(engine) as conn:  # as an upgrade runs: SQLite's foreign keys off
        cfg = schema._config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")  # (and any later revision on the way)
    with engine.connect() as conn:
        assert "feedhealth" not in sa.inspect(conn).get_table_names()
        rows = conn.execute(sa.text("SELECT alert_id FROM delivery")).scalars().all()
        assert rows == ["a1"]
    schema.upgrade(engine)
    assert schema.current(engine) == schema.head()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, SQLModel.metadata) == []
    engine.dispose()


def test_two_workers_failing_one_feed_tell_its_change_once(pg_url: str) -> None:
    """A worker whose lease ran out and the worker that took the feed over both record a
    failure: the second waits for the first's row (FOR UPDATE), so the errors add up and the
    change to failing is written once, not once by each from the same old row."""
    import threading
    import time

    engine = db.make_engine(pg_url)
    schema.upgrade(engine)
    now = utcnow()
    with db.session(engine) as s:
        store.sync_feeds(s, [("f", "https://news.example.org/f.xml")], now)
        row = store.get_feed(s, "f")
        row.consecutive_errors = 1
        store.save_feeds(s, [row])
        s.commit()
    health_rules = storing.Health(channels=("ops",))  # failing_after 3
    job = storing.FeedJob("f", "https://news.example.org/f.xml", dt.timedelta(minutes=10))
    with db.session(engine) as first:
        row = store.get_feed(first, "f", lock=True)  # the first worker, writing its failure
        second = threading.Thread(
            target=storing.record_failure,
            args=(engine, health_rules, job, now, 500, "HTTP 500", "FetchHTTPError", None),
        )
        second.start()
        deadline = time.monotonic() + 10
        waiting = sa.text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )

        def blocked() -> bool:  # another connection: stats are a snapshot per transaction
            with engine.connect() as c:
                return bool(c.execute(waiting).scalar())

        while not blocked():  # the second writer waits for the row
            assert time.monotonic() < deadline, "the second writer never waited for the row"
        row.consecutive_errors, row.health, row.health_since = 2, "ok", now
        store.save_feeds(first, [row])
        first.commit()
    second.join(timeout=10)
    with db.session(engine) as s:
        row = store.get_feed(s, "f")
        assert (row.consecutive_errors, row.health) == (3, "failing")
        changes = s.exec(sa.select(FeedHealth)).scalars().all()
        assert [(c.previous, c.state) for c in changes] == [("ok", "failing")]
    engine.dispose()
