"""Polling politely and cheaply (issue 11): Cache-Control max-age is a floor for the next poll,
a permanent redirect moves the feed (logged), and a body that is byte-identical to the last
one (a server that ignores conditional requests) is not parsed again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import structlog

from monitor import db, pipeline, scheduler, store
from monitor.config import load_rules
from monitor.models import utcnow
from monitor.settings import load_settings
from tests.feedserver import FeedServer, Route

FEED = (
    b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>"
    b"<link>https://e.org/</link><description>d</description>"
    b"<item><guid>a</guid><title>Rain</title><description>Rain.</description></item>"
    b"</channel></rss>"
)


def runtime(tmp_path: Path, url: str, *more: tuple[str, str], poll: str = "") -> scheduler.Runtime:
    """Stages over feed `f` at `url`, and `more` feeds as (id, url); `poll`: more settings."""
    (tmp_path / "w.yaml").write_text("rules: []\n")
    config = tmp_path / "monitor.yaml"
    feeds = [("f", url), *more]
    config.write_text(
        f"database: sqlite:///{tmp_path}/m.db\nwatchlist: {tmp_path / 'w.yaml'}\n"
        f"poll: {{allow_private_networks: true, jitter: 0s, interval: 1m{poll}}}\nfeeds:\n"
        + "".join(f"  - {{id: {i}, url: '{u}'}}\n" for i, u in feeds)
    )
    settings = load_settings(config)
    return scheduler.build(settings, load_rules(settings))


def row(rt: scheduler.Runtime) -> store.feeds.Feed:
    with db.session(rt.engine) as s:
        return store.get_feed(s, "f")


async def test_max_age_is_a_floor_for_the_next_poll(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/f"] = Route(FEED, headers={"Cache-Control": "max-age=3600"})
    rt = runtime(tmp_path, feed_server.url("/f"))
    try:
        before = utcnow()
        await pipeline.poll(rt.ctx, everything=True)
        due = row(rt).next_due_at
        assert due is not None and due - before >= dt.timedelta(seconds=3600)
    finally:
        await rt.aclose()


async def test_a_permanent_redirect_moves_the_feed(tmp_path: Path, feed_server: FeedServer) -> None:
    feed_server.routes["/new"] = Route(FEED)
    feed_server.routes["/old"] = Route(redirect=feed_server.url("/new"))
    rt = runtime(tmp_path, feed_server.url("/old"))
    try:
        with structlog.testing.capture_logs() as logs:
            await pipeline.poll(rt.ctx, everything=True)
        assert [e["to"] for e in logs if e["event"] == "feed_moved"] == [feed_server.url("/new")]
        assert row(rt).moved_to == feed_server.url("/new")
        await pipeline.poll(rt.ctx, everything=True)
        assert [r.path for r in feed_server.requests] == ["/old", "/new", "/new"]
    finally:
        await rt.aclose()
    # The operator writes another URL into monitor.yaml: the move is forgotten.
    with db.session(rt.engine) as s:
        store.sync_feeds(s, [("f", feed_server.url("/elsewhere"))], utcnow())
        s.commit()
        assert store.get_feed(s, "f").moved_to is None


async def test_a_byte_identical_body_is_not_parsed_again(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.routes["/f"] = Route(FEED, etag=False)  # a server without validators
    rt = runtime(tmp_path, feed_server.url("/f"))
    try:
        [first] = (await pipeline.poll(rt.ctx, everything=True)).feeds
        [second] = (await pipeline.poll(rt.ctx, everything=True)).feeds
        assert (first.items, second.items) == (1, 0)  # the same bytes: not parsed
        assert second.ok and row(rt).last_item_count == 1
        feed_server.routes["/f"] = Route(FEED.replace(b"Rain", b"Snow"), etag=False)
        [third] = (await pipeline.poll(rt.ctx, everything=True)).feeds
        assert third.items == 1 and third.changed == 1
    finally:
        await rt.aclose()


async def test_fetches_in_flight_stay_within_poll_concurrency(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    """More polls than fetch slots are under way (pipeline.IN_FLIGHT: the later ones parse
    and wait for the writer), but never more fetches than `poll.concurrency`."""
    feeds = ["f"] + [f"g{i}" for i in range(11)]
    for f in feeds:
        body = FEED.replace(b"<guid>a</guid>", f"<guid>{f}</guid>".encode())
        feed_server.routes[f"/{f}"] = Route(body, delay=0.2)  # busy: the fetches overlap
    urls = [(f, feed_server.url("/" + f)) for f in feeds]
    rt = runtime(tmp_path, urls[0][1], *urls[1:], poll=", concurrency: 3, per_host: 3")
    try:
        report = await pipeline.poll(rt.ctx, everything=True)
    finally:
        await rt.aclose()
    assert sorted(o.feed_id for o in report.feeds if o.ok) == sorted(feeds)
    assert feed_server.peak == 3  # the slots were used, and not passed


async def test_polls_waiting_for_the_writer_give_their_places_to_new_ones(
    tmp_path: Path, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A poll whose feed waits for the writer's batch is past its fetch and parse: its place
    goes to a new poll (up to pipeline.HELD such places), so more polls are under way than
    IN_FLIGHT a fetch slot while a batch gathers, and never more than the two bounds."""
    from monitor import storing

    monkeypatch.setattr(storing, "FULL", 100)  # a batch waits for every poll on its way
    monkeypatch.setattr(storing, "LINGER", 5.0)
    monkeypatch.setattr(pipeline, "IN_FLIGHT", 1)
    monkeypatch.setattr(pipeline, "HELD", 3)
    feeds = ["f"] + [f"g{i}" for i in range(15)]
    for n, f in enumerate(feeds):
        body = FEED.replace(b"<guid>a</guid>", f"<guid>{f}</guid>".encode())
        # one quick feed in four: its poll waits for the batch while the others still fetch
        feed_server.routes[f"/{f}"] = Route(body, delay=0.0 if n % 4 == 0 else 0.3)
    urls = [(f, feed_server.url("/" + f)) for f in feeds]
    rt = runtime(tmp_path, urls[0][1], *urls[1:], poll=", concurrency: 4, per_host: 4")
    under_way = [0, 0]  # now, at most
    poll_feed = pipeline.poll_feed

    async def counted(*args: object) -> object:
        under_way[0] += 1
        under_way[1] = max(under_way)
        try:
            return await poll_feed(*args)  # type: ignore[arg-type]
        finally:
            under_way[0] -= 1

    monkeypatch.setattr(pipeline, "poll_feed", counted)
    try:
        report = await pipeline.poll(rt.ctx, everything=True)
    finally:
        await rt.aclose()
    assert sorted(o.feed_id for o in report.feeds if o.ok) == sorted(feeds)
    places = pipeline.IN_FLIGHT * 4
    assert places < under_way[1] <= places + pipeline.HELD
