"""The store on SQLite and PostgreSQL: what is new, alerts at most once, claims, retention."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import Session, select

from monitor import db, schema, store
from monitor.models import Delivery, Hit, Item, ItemData

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
        [d1] = store.due_deliveries(s1, NOW)
        [d2] = store.due_deliveries(s2, NOW)
        d1_id, alert_id = d1.id, d1.alert_id
        assert store.claim_delivery(s1, d1, NOW, lease)
        s1.commit()
        assert not store.claim_delivery(s2, d2, NOW, lease)  # the other process lost
        s2.commit()
    with Session(engine) as s:
        assert store.due_deliveries(s, NOW) == []  # leased
        assert len(store.due_deliveries(s, NOW + lease)) == 1  # lease expired: due again
        store.mark_failed(s, d1_id, "HTTP 410", None)  # type: ignore[arg-type]
        s.commit()
        assert s.get(Delivery, d1_id).status == "dead"  # type: ignore[union-attr]
        assert store.requeue_delivery(s, alert_id, NOW) == 1
        s.commit()
        assert len(store.due_deliveries(s, NOW)) == 1


def test_a_feed_is_claimed_once(engine) -> None:  # type: ignore[no-untyped-def]
    lease = dt.timedelta(minutes=5)
    with Session(engine) as s:
        assert store.due_feeds(s, ["f1"], NOW) == ["f1"]
        assert store.claim_feed(s, "f1", NOW, lease)
        assert not store.claim_feed(s, "f1", NOW, lease)
        s.commit()
        assert store.due_feeds(s, ["f1"], NOW) == []


def test_retention_keeps_a_tombstone(engine) -> None:  # type: ignore[no-untyped-def]
    old = NOW - dt.timedelta(days=200)
    with Session(engine) as s:
        store.upsert_items(s, "f1", [item("old")], old)
        store.upsert_items(s, "f1", [item("new")], NOW)
        s.commit()
        assert store.purge(s, NOW - dt.timedelta(days=180)) == 1
        s.commit()
        # The purged item is still known: it is not new when the feed shows it again.
        assert store.upsert_items(s, "f1", [item("old")], NOW) == []


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
        assert store.due_feeds(s, ["f2"], NOW) == ["f2"]
        assert set(store.activate_rules(s, {"r-new": "fp"}, NOW)) == {"r-new"}
