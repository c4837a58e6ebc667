"""The store on SQLite and PostgreSQL: what is new, alerts at most once, claims, retention."""

from __future__ import annotations

import collections
import datetime as dt

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from monitor import db, schema, store
from monitor.models import Delivery, Hit, Item, ItemData, Tombstone

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(db_url: str):  # type: ignore[no-untyped-def]
    engine = db.make_engine(db_url)
    schema.upgrade(engine)
    with Session(engine) as s:
        store.sync_feeds(s, [("f1", "http://example.org/rss")], NOW)
        s.commit()
    yield engine
    engine.dispose()


def item(guid: str, text: str = "body") -> ItemData:
    return ItemData(
        feed_id="f1",
        guid=guid,
        url=f"https://example.org/{guid}",
        title=f"t {guid}",
        summary=text,
        content_hash=f"h-{guid}-{text}",
    )


def test_only_new_and_changed_items_come_back(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        first = store.upsert_items(s, "f1", [item("a"), item("b")], NOW)
        s.commit()
    assert [x.data.guid for x in first] == ["a", "b"] and not any(x.changed for x in first)
    with Session(engine) as s:
        again = store.upsert_items(s, "f1", [item("a"), item("b", "edited"), item("c")], NOW)
        s.commit()
    assert [(x.data.guid, x.changed) for x in again] == [("b", True), ("c", False)]
    assert again[0].id == first[1].id  # identity kept when the text changes
    with Session(engine) as s:
        assert store.upsert_items(s, "f1", [item("a"), item("b", "edited")], NOW) == []
        assert len(s.exec(select(Item)).all()) == 3


def test_an_item_without_a_date_takes_first_seen(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        store.upsert_items(s, "f1", [item("a")], NOW)
        s.commit()
        row = s.exec(select(Item)).one()
    assert row.published_at == NOW and row.first_seen_at == NOW
    assert row.published_at.tzinfo is not None


def test_one_alert_per_rule_and_item(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        [a] = store.upsert_items(s, "f1", [item("a")], NOW)
        hit = Hit("r1", ("north korea",), "«North Korea»")
        alert = store.NewAlert(a.id, "r1", "Rule one", "high", hit, ("ops", "mail"))
        created = store.add_alerts(s, [alert, alert], NOW)
        s.commit()
    assert len(created) == 1
    with Session(engine) as s:
        assert store.add_alerts(s, [alert], NOW) == []
        deliveries = s.exec(select(Delivery)).all()
    assert sorted(d.channel for d in deliveries) == ["mail", "ops"]


def test_a_delivery_is_claimed_once(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        [a] = store.upsert_items(s, "f1", [item("a")], NOW)
        store.add_alerts(s, [store.NewAlert(a.id, "r", "r", "low", Hit("r", (), ""), ("x",))], NOW)
        s.commit()
    lease = dt.timedelta(minutes=5)
    with Session(engine) as s1, Session(engine) as s2:
        [c1] = store.claim(s1, store.due_deliveries(s1, NOW), NOW, lease, worker="w1")
        # PostgreSQL: the row is locked until w1 commits, so w2 skips it (SKIP LOCKED);
        # SQLite: w2 sees the row as it was, and its claim finds it taken.
        seen = store.due_deliveries(s2, NOW)
        s1.commit()
        assert store.claim(s2, seen, NOW, lease, worker="w2") == []
        s2.commit()
    assert c1.attempt == 1 and not c1.took_over and c1.msg.title == "t a"
    with Session(engine) as s:
        assert store.due_deliveries(s, NOW) == []  # leased
        [late] = store.due_deliveries(s, NOW + lease)  # lease expired: due again
        [again] = store.claim(s, [late], NOW + lease, lease, worker="w2")
        s.commit()
        assert again.took_over and again.attempt == 2  # w1 never settled it
        store.mark_failed(s, [c1.id], "HTTP 410", None)
        s.commit()
        dead = s.get(Delivery, c1.id)
        assert dead is not None and dead.status == "dead" and dead.claimed_by is None
        assert store.requeue_delivery(s, dead.alert_id, NOW) == 1
        s.commit()
        assert len(store.due_deliveries(s, NOW)) == 1


def test_a_digests_deliveries_are_settled_together(engine) -> None:  # type: ignore[no-untyped-def]
    """More deliveries than one statement's chunk (500) are all marked, and only they."""
    with Session(engine) as s:
        items = store.upsert_items(s, "f1", [item(f"i{n}") for n in range(1201)], NOW)
        hit = Hit("r", (), "")
        store.add_alerts(
            s, [store.NewAlert(i.id, "r", "r", "low", hit, ("x",)) for i in items], NOW
        )
        s.commit()
    with Session(engine) as s:
        due = store.due_deliveries(s, NOW, 2000)
        claimed = store.claim(s, due, NOW, dt.timedelta(minutes=5), worker="w")
        s.commit()
    sent, kept = [c.id for c in claimed[:1200]], claimed[1200].id
    with Session(engine) as s:
        store.mark_sent(s, sent, NOW, digest_id="dgst_1")
        s.commit()
        rows = {d.id: d for d in s.exec(select(Delivery)).all()}
    assert all(rows[i].status == "sent" and rows[i].digest_id == "dgst_1" for i in sent)
    assert rows[kept].status == "pending" and rows[kept].claimed_by == "w"


def test_feeds_are_claimed_once_in_batches(engine) -> None:  # type: ignore[no-untyped-def]
    lease = dt.timedelta(seconds=90)
    feeds = [(f"f{i}", f"http://h{i % 2}.example.org/{i}") for i in range(1, 7)]
    with Session(engine) as s:
        store.sync_feeds(s, feeds, NOW)
        s.commit()
    with Session(engine) as s1, Session(engine) as s2:
        first = store.claim_feeds(s1, NOW, worker="w1", lease=lease, limit=4)
        second = store.claim_feeds(s2, NOW, worker="w2", lease=lease, limit=10)
    assert len(first) == 4 and len(second) == 2
    assert not {c.id for c in first} & {c.id for c in second}
    with Session(engine) as s:
        assert store.claim_feeds(s, NOW, worker="w3", lease=lease, limit=10) == []
        later = store.claim_feeds(s, NOW + lease, worker="w3", lease=lease, limit=10)
    assert len(later) == 6 and all(c.took_over for c in later)  # nobody released them


@pytest.mark.parametrize("force", [True, False])
def test_a_claim_looks_past_a_page_of_feeds_this_cycle_polled(engine, force: bool) -> None:  # type: ignore[no-untyped-def]
    """`skip` is applied to pages of candidates: a first page made only of feeds this cycle
    has polled (released ones, say, still due) does not end the cycle early."""
    feeds = [(f"f{i:02}", f"http://h{i % 5}.example.org/{i}") for i in range(40)]
    with Session(engine) as s:
        store.sync_feeds(s, feeds, NOW)
        s.commit()
        polled = {f for f, _ in feeds[:30]}  # more than a page (limit * 4 + 8 = 16)
        got = store.claim_feeds(
            s, NOW, worker="w", lease=dt.timedelta(seconds=90), limit=2, skip=polled,
            force=force,
        )  # fmt: skip
        assert len(got) == 2 and not {c.id for c in got} & polled
        rest = store.claim_feeds(
            s, NOW, worker="w", lease=dt.timedelta(seconds=90), limit=50,
            skip=polled | {c.id for c in got}, force=force,
        )  # fmt: skip
    assert len(rest) == 8


def test_a_feed_is_claimed_only_when_its_host_has_room(engine) -> None:  # type: ignore[no-untyped-def]
    feeds = [(f"f{i}", f"http://busy.example.org/{i}") for i in range(1, 5)]
    with Session(engine) as s:
        store.sync_feeds(s, feeds, NOW)
        s.commit()
        allowed = {"http://example.org/rss", "http://busy.example.org/1"}
        got = store.claim_feeds(
            s, NOW, worker="w", lease=dt.timedelta(seconds=90), limit=10, room=allowed.__contains__
        )
    assert sorted(c.id for c in got) == ["f1"]  # f1 of the config is disabled now


def test_a_removed_feed_is_not_claimed(engine) -> None:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        store.sync_feeds(s, [("f2", "http://example.org/2")], NOW)
        s.commit()
        got = store.claim_feeds(s, NOW, worker="w", lease=dt.timedelta(seconds=90), limit=10)
    assert [c.id for c in got] == ["f2"]


def test_retention_deletes_old_items_and_keeps_a_tombstone(engine) -> None:  # type: ignore[no-untyped-def]
    old = NOW - dt.timedelta(days=200)
    with Session(engine) as s:
        [alerted, _gone] = store.upsert_items(s, "f1", [item("alerted"), item("old")], old)
        store.upsert_items(s, "f1", [item("new")], NOW)
        hit = Hit("r", ("x",), "x")
        store.add_alerts(s, [store.NewAlert(alerted.id, "r", "r", "low", hit, ())], old)
        s.commit()
        before = NOW - dt.timedelta(days=180)
        assert store.purge_batch(s, before, NOW) == 2
        s.commit()
        assert store.purge_batch(s, before, NOW) == 0
        rows = {i.guid: i for i in s.exec(select(Item)).all()}
        assert set(rows) == {"alerted", "new"}  # the alerted one keeps its row, not its text
        assert rows["alerted"].summary == "" and rows["alerted"].title == "t alerted"
        [stone] = s.exec(select(Tombstone)).all()
        assert (stone.guid, stone.content_hash) == ("old", "h-old-body")
        # The purged item is still known: it is not new when the feed shows it again.
        assert store.upsert_items(s, "f1", [item("old"), item("alerted")], NOW) == []


def test_processes_starting_together_do_not_trip_over_new_rows(engine) -> None:  # type: ignore[no-untyped-def]
    """Two processes add the same new feed and the same new rule at once (a fresh database,
    a rolling restart): the second waits for the first and neither fails."""
    import threading

    errors: list[BaseException] = []

    def second() -> None:
        try:
            with Session(engine) as b:
                store.sync_feeds(b, [("f2", "http://example.org/2")], NOW)
                store.activate_rules(b, {"r-new": "fp"}, NOW)
                b.commit()
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    with Session(engine) as a:
        store.sync_feeds(a, [("f2", "http://example.org/2")], NOW)
        store.activate_rules(a, {"r-new": "fp"}, NOW)
        other = threading.Thread(target=second)
        other.start()  # its inserts wait on ours
        a.commit()
    other.join(timeout=30)
    assert not other.is_alive() and errors == []
    with Session(engine) as s:
        got = store.claim_feeds(s, NOW, worker="w", lease=dt.timedelta(seconds=90), limit=10)
        assert {c.id for c in got} == {"f2"}  # both configured f2 alone: f1 is disabled
        assert set(store.activate_rules(s, {"r-new": "fp"}, NOW)) == {"r-new"}


def test_insert_ignore_many_stores_what_core_would(engine) -> None:  # type: ignore[no-untyped-def]
    """The driver-level executemany (db.insert_ignore_many) writes exactly the values Core's
    INSERT would (bind processors: aware datetimes to UTC, bytes, NULLs), and the first of
    rows that conflict wins, on both backends."""
    import sqlalchemy as sa
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    from monitor.models import StoryBand, StoryMember

    later = (NOW + dt.timedelta(hours=3)).astimezone(dt.timezone(dt.timedelta(hours=5)))
    cases = {
        StoryMember: [
            {"item_id": 1, "story": "s1", "url": "https://x/1", "content_hash": "h1",
             "sketch": b"\x00\x01", "seen_at": NOW},
            {"item_id": 2, "story": "s2", "url": None, "content_hash": "h2", "sketch": None,
             "seen_at": later},
            {"item_id": 1, "story": "dup", "url": None, "content_hash": "x", "sketch": None,
             "seen_at": NOW},
        ],
        StoryBand: [
            {"band": "b1", "item_id": 1, "seen_at": NOW},
            {"band": "b1", "item_id": 2, "seen_at": None},
            {"band": "b1", "item_id": 1, "seen_at": later},
        ],
    }  # fmt: skip
    for model, rows in cases.items():
        table: sa.Table = model.__table__  # type: ignore[attr-defined]
        stored = []
        for how in ("driver", "core"):
            with Session(engine) as s:
                s.execute(sa.delete(table))
                if how == "driver":
                    db.insert_ignore_many(s, model, rows)
                else:
                    insert = (
                        pg_insert if s.connection().dialect.name == "postgresql" else sqlite_insert
                    )
                    s.connection().execute(insert(table).on_conflict_do_nothing(), rows)
                cols = ", ".join(c.name for c in table.columns)
                got = s.connection().exec_driver_sql(f"SELECT {cols} FROM {table.name}").all()
                stored.append(sorted(map(tuple, got), key=repr))
                s.commit()
        assert stored[0] == stored[1]
        assert len(stored[0]) == 2


def test_among_selects_exactly_the_rows_of_the_values_asked_for(engine) -> None:  # type: ignore[no-untyped-def]
    """db.among on both backends: more values than one IN chunk, pairs whose columns each
    match some value but not together, and text JSON must carry (quotes, accents, $)."""
    feeds = [(f"f{n}", f"http://example.org/{n}") for n in range(2, 5)]
    guids = [f"g{n}" for n in range(700)] + ["q\"uo'te", "é$[0]\\", "日本"]
    with Session(engine) as s:
        store.sync_feeds(s, feeds, NOW)
        for feed_id, _url in [("f1", ""), *feeds]:
            store.upsert_items(s, feed_id, [item(g) for g in guids], NOW)
        s.commit()
    table = Item.__table__  # type: ignore[attr-defined]
    asked = [("f1", g) for g in guids[::2]] + [("f3", g) for g in guids[1::2]] + [("f9", "g1")]
    with engine.connect() as conn:
        got: set[tuple[str, str]] = set()
        for where in db.among(conn, (table.c.feed_id, table.c.guid), asked):
            got |= {
                (f, g)
                for f, g in conn.execute(sa.select(table.c.feed_id, table.c.guid).where(where))
            }
        assert got & set(asked) == set(asked) - {("f9", "g1")}
        if engine.dialect.name == "sqlite":  # one exact statement; elsewhere a superset
            assert got == set(asked) - {("f9", "g1")}
        ids = [i for (i,) in conn.execute(sa.select(table.c.id).where(table.c.feed_id == "f2"))]
        one: set[int] = set()
        for where in db.among(conn, (table.c.id,), ids[:600]):
            one |= {i for (i,) in conn.execute(sa.select(table.c.id).where(where))}
        assert one == set(ids[:600])
        assert db.among(conn, (table.c.id,), []) == []


def test_column_values_are_processed_as_the_bind_processor_would_each_one() -> None:
    """db._processed reuses a value's processed form for equal values only: lists and tuples
    of strings by their tuple, not [1] for [True] (equal as tuples, not as JSON)."""
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    proc = sa.JSON().dialect_impl(dialect).bind_processor(dialect)
    column = [[], ["News"], [], ["News"], ["a", "b"], [1], [True], [1.0], ["1"], [{"a": 1}], None]
    column += [{"a": [1]}, {"a": [True]}, "x", ["x"], [["x"]], [("x",)]]
    column += [(), ("News",), ("x",), (1,), (True,), (1.0,), ("a", "b"), (("x",),)]
    assert db._processed(proc, column) == [proc(v) for v in column]
    assert db._processed(None, column) is column
    categories = [(), ("News",), None, ("News",), ("a", "b"), ("é", "x"), ()] * 3  # the fast way
    assert db._processed(proc, categories) == [proc(v) for v in categories]
    named = collections.namedtuple("named", "x")
    for odd in ([named(1), (True,), ("a",)], [named(1), (True,)], [1, True, 1.0, "x"], [True, 1]):
        assert db._processed(proc, odd) == [proc(v) for v in odd]  # equal, not the same JSON


def test_a_claimed_alert_carries_its_alert_and_item_as_stored(engine) -> None:  # type: ignore[no-untyped-def]
    """The message of a claim: every field from the alert and its item; an item without a
    summary gives the first 500 characters of its content (characters, not bytes: astral
    and accented letters included)."""
    import dataclasses

    content = "é𝒳" * 300  # 600 characters, 1,800 bytes of UTF-8
    teaser = dataclasses.replace(
        item("a"), summary="", content=content, source="Wire", published_at=NOW
    )
    hit = Hit("r", ("north korea", "missile"), "«North Korea» … «missile»")
    with Session(engine) as s:
        a, b = store.upsert_items(s, "f1", [teaser, item("b")], NOW)
        new = [
            store.NewAlert(a.id, "r", "Rule", "high", hit, ("x",)),
            store.NewAlert(b.id, "r", "Rule", "low", Hit("r", (), ""), ("x",)),
        ]
        store.add_alerts(s, new, NOW)
        s.commit()
    lease = dt.timedelta(minutes=5)
    with Session(engine) as s:
        claimed = store.claim(s, store.due_deliveries(s, NOW), NOW, lease, worker="w")
        s.commit()
    one, other = sorted((c.msg for c in claimed), key=lambda m: m.title)
    assert (one.title, one.url, one.source, one.feed) == (
        "t a", "https://example.org/a", "Wire", "f1"
    )  # fmt: skip
    assert one.summary == content[:500] and one.published_at == NOW
    assert (one.rule_id, one.rule_name, one.severity) == ("r", "Rule", "high")
    assert one.terms == ("north korea", "missile") and one.snippet == hit.snippet
    assert one.created_at == NOW and one.also_reported_by == () and not one.held_back
    assert (other.title, other.summary, other.terms) == ("t b", "body", ())


@pytest.mark.parametrize("at_the_top", [False, True])
def test_new_items_come_back_with_their_own_ids(engine, at_the_top: bool) -> None:  # type: ignore[no-untyped-def]
    # On SQLite the ids of a batch's inserts are read back as the last rowids; a table whose
    # largest id is the largest integer makes SQLite pick them at random: looked up instead.
    with Session(engine) as s:
        store.sync_feeds(s, [("f2", "http://example.org/2"), ("f3", "http://example.org/3")], NOW)
        if at_the_top:  # PostgreSQL's ids are 32-bit; its own sequence numbers the rest
            top = 2**63 - 1 if engine.dialect.name == "sqlite" else 2**31 - 1
            s.add(Item(id=top, feed_id="f3", guid="top", content_hash="x"))
        store.upsert_items(s, "f1", [item("old")], NOW)
        s.commit()
    batch = [
        ("f1", [item("a"), item("b")], NOW),
        ("f2", [replace_feed(item("a"), "f2")], NOW),
        ("f3", [replace_feed(item(g), "f3") for g in ("x", "y", "z")], NOW),
    ]
    with Session(engine) as s:
        stored = store.upsert_many(s, batch)
        s.commit()
        rows = {(r.feed_id, r.guid): r.id for r in s.exec(select(Item))}
    pairs = zip(batch, stored, strict=True)
    got = [(f, it.data.guid, it.id) for (f, *_), out in pairs for it in out]
    assert [(f, g) for f, g, _ in got] == [
        ("f1", "a"), ("f1", "b"), ("f2", "a"), ("f3", "x"), ("f3", "y"), ("f3", "z"),
    ]  # fmt: skip
    assert all(rows[(f, g)] == i for f, g, i in got)
    assert len({i for *_, i in got}) == len(got)


def replace_feed(data: ItemData, feed_id: str) -> ItemData:
    import dataclasses

    return dataclasses.replace(data, feed_id=feed_id)


def test_sqlite_datetimes_are_bound_as_the_two_steps_bind_them() -> None:
    """UTCDateTime's one-step SQLite binding gives the text process_bind_param then the
    dialect's DATETIME give, so stored times compare with those of every release."""
    from sqlalchemy.dialects import sqlite

    from monitor.models import UTCDateTime

    dialect = sqlite.dialect()
    typ = UTCDateTime().dialect_impl(dialect)
    ours = typ.bind_processor(dialect)
    theirs = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)
    east = dt.timezone(dt.timedelta(hours=5, minutes=30))
    for value in (
        dt.datetime(2026, 12, 4, 10, 11, 12, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 4, 10, 11, 12, 345, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 1, 3, 0, tzinfo=east),
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    ):
        assert ours(value) == theirs(typ.process_bind_param(value, dialect))
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive"):
        ours(dt.datetime(2026, 1, 1))
