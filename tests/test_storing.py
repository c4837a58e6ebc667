"""The writer's batch (storing.store_feeds) on both backends: many feeds in one transaction,
each with its own items, counts and alerts; copies of one story in one batch alert once; the
worker's hits are used only when the rules that made them are still the rules in force."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from monitor import db, schema, store, storing
from monitor.fetch import FetchResult
from monitor.models import Alert, Hit, ItemData
from monitor.records import ParsedFeed
from monitor.rules import Watchlist, load_watchlist

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
FEEDS = ("a", "b", "c")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.make_engine(db_url)
    schema.upgrade(engine)
    with Session(engine) as s:
        store.sync_feeds(s, [(f, f"http://example.org/{f}") for f in FEEDS], NOW)
        rows = store.load_feeds(s, FEEDS)
        for f in rows.values():
            f.initialized = True  # known feeds: their new items alert
        store.save_feeds(s, rows.values())
        s.commit()
    yield engine
    engine.dispose()


@pytest.fixture
def watchlist(tmp_path: Path) -> Watchlist:
    path = tmp_path / "watchlist.yaml"
    path.write_text("rules:\n  - {id: dprk, query: 'North Korea + missile'}\n")
    return load_watchlist(path)


def item(feed: str, guid: str, title: str, url: str | None = None) -> ItemData:
    return ItemData(
        feed_id=feed,
        guid=guid,
        url=url or f"https://{feed}.example.org/{guid}",
        title=title,
        content_hash=f"{feed}-{guid}-{title}",
    )


def fetched(feed: str, items: list[ItemData], **kw: object) -> storing.Fetched:
    result = FetchResult(f"http://example.org/{feed}", 200, b"<rss/>", None, None, None, 0.1)
    job = storing.FeedJob(feed, result.url, dt.timedelta(minutes=10))
    return storing.Fetched(job, result, ParsedFeed(None, items, None), NOW, "h", **kw)  # type: ignore[arg-type]


def rules(watchlist: Watchlist) -> storing.Rules:
    return storing.Rules(lambda: watchlist, lambda: {"dprk": NOW - dt.timedelta(days=1)}, {})


def test_a_batch_stores_each_feed_and_one_story_alerts_once(
    engine: Engine, watchlist: Watchlist
) -> None:
    story = "https://wire.example.org/launch"
    batch = [
        fetched("a", [item("a", "1", "North Korea fires missile", story), item("a", "2", "Rain")]),
        fetched("b", [item("b", "9", "North Korea fires missile", story)]),  # a copy
        fetched("c", [item("c", "5", "Snow in Seoul")]),
    ]
    with db.session(engine) as s:
        outcomes = storing.store_feeds(s, rules(watchlist), batch)
        s.commit()
    assert [(o.feed_id, o.new, o.alerts) for o in outcomes] == [
        ("a", 2, 1),
        ("b", 1, 0),
        ("c", 1, 0),
    ]
    with db.session(engine) as s:
        [alert] = s.exec(select(Alert)).all()
        assert alert.also_reported_by == ["b"]
        rows = store.load_feeds(s, FEEDS)
        assert [rows[f].total_items for f in FEEDS] == [2, 1, 1]
        # The same batch again: nothing new, nothing alerts.
        again = storing.store_feeds(s, rules(watchlist), batch)
    assert [(o.new, o.alerts) for o in again] == [(0, 0)] * 3


def test_the_workers_hits_count_only_for_the_rules_that_made_them(
    engine: Engine, watchlist: Watchlist
) -> None:
    # A hit the worker made with the rules in force is used as it is (here a snippet the
    # daemon's own matching would not write) ...
    hit = Hit("dprk", ("North Korea", "missile"), "from the worker")
    quiet = [item("a", "1", "Rain")]
    with db.session(engine) as s:
        [used] = storing.store_feeds(
            s, rules(watchlist), [fetched("a", quiet, hits={"1": [hit]}, hits_by=watchlist.version)]
        )
        # ... but hits made by rules since replaced are not: the item is matched again.
        stale = [item("b", "1", "Rain")]
        [ignored] = storing.store_feeds(
            s, rules(watchlist), [fetched("b", stale, hits={"1": [hit]}, hits_by="an old version")]
        )
        s.commit()
        assert [a.snippet for a in s.exec(select(Alert)).all()] == ["from the worker"]
    assert (used.alerts, ignored.alerts) == (1, 0)


def test_the_writer_waits_for_the_feeds_on_their_way_then_writes_them_together(
    engine: Engine, watchlist: Watchlist
) -> None:
    """Feeds whose polls are under way (`expecting`) join one batch rather than each a
    transaction of its own; a feed with nothing else on its way is written at once."""
    import asyncio
    import time

    writer = storing.Writer(engine, rules(watchlist))
    sizes: list[int] = []
    write = writer._write

    def counted(batch: list[storing.Fetched]) -> list[object]:
        sizes.append(len(batch))
        return write(batch)  # type: ignore[return-value]

    writer._write = counted  # type: ignore[method-assign]

    async def polls() -> float:
        on_their_way = [writer.expecting() for _ in FEEDS]  # three polls under way
        for poll in on_their_way:
            poll.__enter__()

        async def one(n: int, feed: str) -> None:
            await asyncio.sleep(0.02 * n)  # they finish one after the other
            try:
                await writer.store(fetched(feed, [item(feed, "1", f"news {feed}")]))
            finally:
                on_their_way[n].__exit__(None, None, None)

        await asyncio.gather(*(one(n, f) for n, f in enumerate(FEEDS)))
        started = time.monotonic()
        with writer.expecting():  # alone: nothing to wait for
            await writer.store(fetched("a", [item("a", "2", "more news")]))
        return time.monotonic() - started

    try:
        alone = asyncio.run(polls())
    finally:
        writer.close()
    assert sizes == [3, 1]
    assert alone < storing.LINGER


def test_a_batch_does_not_wait_for_the_polls_of_the_batch_written_before_it(
    engine: Engine, watchlist: Watchlist
) -> None:
    """The polls of a batch leave the writer's count only once that batch is written, after
    the next batch has started gathering: their leaving wakes it. (It used to linger its
    whole LINGER for them: a quarter of a second at the end of every cycle.)"""
    import asyncio
    import threading
    import time

    writer = storing.Writer(engine, rules(watchlist))
    release = threading.Event()
    write = writer._write

    def held(batch: list[storing.Fetched]) -> list[object]:
        assert release.wait(30), "the test never released the write"
        return write(batch)  # type: ignore[return-value]

    writer._write = held  # type: ignore[method-assign]

    async def poll(feed: str, guid: str) -> None:
        with writer.expecting():
            await writer.store(fetched(feed, [item(feed, guid, f"news {feed}")]))

    async def until(done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 30
        while not done():
            assert time.monotonic() < deadline
            await asyncio.sleep(0)

    async def polls() -> float:
        first = asyncio.create_task(poll("a", "1"))  # alone: written at once (held)
        await until(lambda: writer._writing > 0 or first.done())
        second = asyncio.create_task(poll("b", "1"))  # arrives while the first is written
        await until(lambda: bool(writer._queue) or second.done())
        started = time.monotonic()
        release.set()
        await asyncio.gather(first, second)
        return time.monotonic() - started

    try:
        took = asyncio.run(polls())
    finally:
        release.set()
        writer.close()
    assert took < storing.LINGER / 2, f"the second batch lingered {took:.3f} s"


def test_feed_rows_hold_every_column_and_save_writes_back_only_the_outcome(
    engine: Engine,
) -> None:
    from monitor.models import Feed

    assert set(store.feeds.ROW_COLUMNS) == set(Feed.__table__.columns.keys())  # type: ignore[attr-defined]
    later = NOW + dt.timedelta(hours=1)
    with db.session(engine) as s:
        rows = store.load_feeds(s, FEEDS, lock=True)
        a = rows["a"]
        store.record_success(
            a, now=later, status=200, etag='"e"', last_modified="Tue", item_count=3,
            new_count=2, next_due=later, body_hash="b" * 64, moved_to="http://example.org/moved",
            title="A", health="stale", gaps=[60.0, 120.0], last_new_at=later, interval_s=90.0,
        )  # fmt: skip
        b = rows["b"]
        store.record_failure(
            b, now=later, status=500, error="HTTP 500", kind="FetchHTTPError", next_due=later,
            health="failing",
        )  # fmt: skip
        a.url, a.enabled = "http://elsewhere.example.org/", False  # not an outcome's to write
        store.save_feeds(s, rows.values())
        s.commit()
    with db.session(engine) as s:
        again = store.load_feeds(s, FEEDS)
    got = again["a"]
    assert (got.url, got.enabled) == ("http://example.org/a", True)
    assert (got.etag, got.last_modified, got.last_item_count, got.total_items) == (
        '"e"', "Tue", 3, 2,
    )  # fmt: skip
    assert (got.health, got.health_since, got.gaps, got.interval_s) == (
        "stale", later, [60.0, 120.0], 90.0,
    )  # fmt: skip
    assert (got.moved_to, got.title, got.initialized, got.claimed_by) == (
        "http://example.org/moved", "A", True, None,
    )  # fmt: skip
    assert (got.last_fetch_at, got.last_success_at, got.next_due_at) == (later, later, later)
    failed = again["b"]
    assert (failed.last_status, failed.last_error, failed.last_error_kind) == (
        500, "HTTP 500", "FetchHTTPError",
    )  # fmt: skip
    assert (failed.consecutive_errors, failed.health, failed.last_success_at) == (
        1, "failing", None,
    )  # fmt: skip
    assert (again["c"].etag, again["c"].last_fetch_at) == (None, None)  # untouched
