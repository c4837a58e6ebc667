"""Upgrades: a database written by monitor 0.1.0 upgrades in place and nothing already alerted
alerts again; the models and the migrations agree; a newer or a foreign database is refused;
processes starting together on an empty database all come up.

The 0.1.0 databases are SQL dumps made by 0.1.0 itself (tests/data/upgrade/make_fixture.py):
one poll of feed-0.1.0.xml with backfill, 4 alerts, each delivered to `ops` (sent) and to
`audit` (a 503, so still pending).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import SQLModel

from monitor import db, schema
from monitor.cli import run_cli
from monitor.errors import StoreError
from tests.conftest import DATA, ROOT
from tests.servers import WebhookReceiver

FIXTURE = DATA / "upgrade"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_TITLES = {
    "North Korea fires ballistic missile into the sea",
    "Japan protests North Korea missile overflight",
    "US and South Korea hold drills after North Korea missile launch",
    "Grain ships leave Odesa under corridor deal",
}
NEW_TITLES = {
    "North Korea fires two more missiles, Seoul says",
    "UN Security Council meets on North Korea missile tests",
}


def load_0_1_0(url: str) -> None:
    """Make `url` the database monitor 0.1.0 left (its own dump, replayed)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        import sqlite3

        with sqlite3.connect(str(parsed.database)) as conn:
            conn.executescript((FIXTURE / "0.1.0-sqlite.sql").read_text())
        return
    dsn = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    dump = (FIXTURE / "0.1.0-postgresql.sql").read_text()
    # psql meta-commands (pg_dump's \restrict guard) are psql's, not SQL
    sql = "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.encode())


def config(tmp_path: Path, url: str, ops: WebhookReceiver, audit: WebhookReceiver) -> Path:
    feed = tmp_path / "feed.xml"
    feed.write_bytes((FIXTURE / "feed-now.xml").read_bytes())
    path = tmp_path / "monitor.yaml"
    path.write_text(
        f"""database: {url}
watchlist: {FIXTURE / "watchlist.yaml"}
feeds:
  - id: upgrade
    url: {feed}
    backfill: true
channels:
  ops: {{type: webhook, url: "{ops.url}", secret: {SECRET}}}
  audit: {{type: webhook, url: "{audit.url}", secret: {SECRET}}}
"""
    )
    return path


def one_feed(
    tmp_path: Path, url: str, feed_id: str, feed: Path, ops: WebhookReceiver, audit: bool = False
) -> Path:
    """A config polling one feed with backfill into `ops` (and `audit`, 0.1.0's other
    channel, as a log: its pending deliveries go somewhere)."""
    path = tmp_path / "monitor.yaml"
    path.write_text(
        f"database: {url}\nwatchlist: {FIXTURE / 'watchlist.yaml'}\n"
        f"feeds:\n  - {{id: {feed_id}, url: {feed}, backfill: true}}\n"
        f"channels:\n  ops: {{type: webhook, url: '{ops.url}', secret: {SECRET}}}\n"
        + ("  audit: {type: log}\n" if audit else "")
    )
    return path


def downgrade(engine: sa.Engine, revision: str) -> None:
    """Alembic's downgrade to `revision`, as an upgrade runs (SQLite's foreign keys off)."""
    from alembic import command

    cfg = schema._config()
    with schema._locked(engine) as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def polls_without_alerting_again(tmp_path: Path, db_url: str) -> None:
    """The 0.1.0 database's feed polled again after the upgrade: nothing alerts."""
    with WebhookReceiver(secret=SECRET) as ops:
        path = one_feed(tmp_path, db_url, "upgrade", FIXTURE / "feed-0.1.0.xml", ops, audit=True)
        assert run_cli(["--config", str(path), "once", "--all"]) == 0
        assert ops.requests == []  # every item was stored (and alerted) before the upgrade


def test_the_fixture_is_0_1_0s() -> None:
    for name in ("0.1.0-sqlite.sql", "0.1.0-postgresql.sql"):
        text = (FIXTURE / name).read_text()
        assert "alembic_version" not in text and "schema_version" in text


def test_a_0_1_0_database_upgrades_and_alerts_only_on_the_new_items(
    tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    load_0_1_0(db_url)
    engine = db.make_engine(db_url)
    assert schema.current(engine) is None  # 0.1.0 kept no Alembic history
    with WebhookReceiver(secret=SECRET) as ops, WebhookReceiver(secret=SECRET) as audit:
        path = config(tmp_path, db_url, ops, audit)
        assert run_cli(["--config", str(path), "once", "--all"]) == 0
        assert schema.current(engine) == schema.head()
        sent = ops.wait_for(2)
        assert {r.json["item"]["title"] for r in sent} == NEW_TITLES
        assert all(r.verified for r in sent)
        # audit: the four deliveries 0.1.0 left pending, then the two new alerts; each once
        pending = audit.wait_for(6)
        titles = [r.json["item"]["title"] for r in pending]
        assert sorted(titles) == sorted(OLD_TITLES | NEW_TITLES)
        assert len({r.headers["webhook-id"] for r in pending}) == 6
        capsys.readouterr()
        # a second cycle: nothing new, nothing sent again
        assert run_cli(["--config", str(path), "once", "--all"]) == 0
        assert len(ops.requests) == 2 and len(audit.requests) == 6
    capsys.readouterr()
    assert run_cli(["--config", str(path), "alerts"]) == 0
    shown = capsys.readouterr().out
    for title in OLD_TITLES | NEW_TITLES:
        assert title[:40] in shown
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version FROM schema_version")).scalar()
        health = conn.execute(sa.text("SELECT health FROM feed WHERE id = 'upgrade'")).scalar()
    assert version == 2  # so that 0.1.0 refuses the upgraded database
    assert health == "ok"
    engine.dispose()


def test_models_and_migrations_agree(db_url: str) -> None:
    """`alembic check`: an empty database upgraded to the newest revision is exactly what
    the models describe (tables, columns, types, indexes, constraints)."""
    engine = db.make_engine(db_url)
    schema.upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(ctx, SQLModel.metadata) == []
    engine.dispose()


def test_head_is_the_newest_script_and_a_start_at_it_loads_no_alembic(tmp_path: Path) -> None:
    """schema.HEAD (what a start compares the database with) is the scripts' head; a start
    on a database at it needs no Alembic, a database one revision behind is upgraded."""
    assert schema.head() == schema.HEAD
    url = f"sqlite:///{tmp_path / 'm.db'}"
    engine = db.make_engine(url)
    assert schema.upgrade(engine).changed
    engine.dispose()
    probe = (
        "import sys; from monitor import db, schema; "
        f"e = db.make_engine({url!r}); done = schema.upgrade(e); "
        "print(done.changed, any(m == 'alembic' or m.startswith('alembic.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    engine = db.make_engine(url)
    from alembic import command

    cfg = schema._config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "-1")
    assert schema.current(engine) != schema.HEAD
    assert schema.upgrade(engine).changed and schema.current(engine) == schema.HEAD
    engine.dispose()


def test_the_baseline_is_0_1_0s_schema(tmp_path: Path) -> None:
    """Revision 0001 builds the very schema 0.1.0's create_all built (the dump's DDL)."""
    import sqlite3

    ours = tmp_path / "ours.db"
    engine = db.make_engine(f"sqlite:///{ours}")
    with engine.connect() as conn:
        from alembic import command

        cfg = schema._config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, schema.BASELINE)
        conn.commit()
    engine.dispose()
    theirs = tmp_path / "theirs.db"
    with sqlite3.connect(theirs) as c:
        c.executescript((FIXTURE / "0.1.0-sqlite.sql").read_text())

    def shape(path: Path) -> set[tuple[str, str, str]]:
        with sqlite3.connect(path) as c:
            rows = c.execute(
                "SELECT m.name, p.name, p.type || ':' || p.\"notnull\" || ':' || p.pk "
                "FROM sqlite_master m JOIN pragma_table_info(m.name) p "
                "WHERE m.type = 'table' AND m.name != 'alembic_version'"
            ).fetchall()
            idx = c.execute(
                "SELECT tbl_name, name, '' FROM sqlite_master "
                "WHERE type = 'index' AND tbl_name != 'alembic_version'"
            ).fetchall()
        return set(rows) | set(idx)

    assert shape(ours) == shape(theirs)


def test_a_newer_database_is_refused(db_url: str, tmp_path: Path) -> None:
    engine = db.make_engine(db_url)
    schema.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match=r"revision 9999\) is newer than this monitor"):
        schema.upgrade(engine)
    path = tmp_path / "monitor.yaml"
    path.write_text(f"database: {db_url}\nwatchlist: {FIXTURE / 'watchlist.yaml'}\n")
    assert run_cli(["--config", str(path), "db", "upgrade"]) == 1
    with engine.connect() as conn:  # nothing was changed
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "9999"
    engine.dispose()


def test_a_foreign_database_is_refused(sqlite_url: str) -> None:
    engine = db.make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY)"))
    with pytest.raises(StoreError, match="not monitor's"):
        schema.upgrade(engine)
    assert sa.inspect(engine).get_table_names() == ["customers"]
    engine.dispose()


def test_db_upgrade_says_what_it_did(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    load_0_1_0(sqlite_url)
    path = tmp_path / "monitor.yaml"
    path.write_text(f"database: {sqlite_url}\nwatchlist: {FIXTURE / 'watchlist.yaml'}\n")
    assert run_cli(["--config", str(path), "db", "upgrade"]) == 0
    assert f"from 0001 to {schema.head()}" in capsys.readouterr().out
    assert run_cli(["--config", str(path), "db", "upgrade"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_processes_upgrading_together_all_succeed(tmp_path: Path, db_url: str) -> None:
    """Three `monitor db upgrade` started at once on an empty database: one migrates under the
    lock, the others wait for it and find the work done; all exit 0."""
    path = tmp_path / "monitor.yaml"
    path.write_text(f"database: {db_url}\nwatchlist: {FIXTURE / 'watchlist.yaml'}\n")
    cmd = [sys.executable, "-m", "monitor", "--config", str(path), "db", "upgrade"]
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert sum("upgraded from an empty database" in o for o in outputs) == 1, outputs
    engine = db.make_engine(db_url)
    assert schema.current(engine) == schema.head()
    engine.dispose()


def test_revision_0007_gives_old_items_their_story_and_an_old_alert_takes_its_copies(
    tmp_path: Path, db_url: str
) -> None:
    """Stories (0007): every item of the 0.1.0 database gets its content hash as its story,
    the key its alerts already folded copies by; a copy of an alerted item that arrives after
    the upgrade, in another feed under another URL, does not alert again and is named on the
    old alert, among its sources."""
    load_0_1_0(db_url)
    engine = db.make_engine(db_url)
    schema.upgrade(engine)
    with engine.connect() as conn:
        stories = conn.execute(sa.text("SELECT story, content_hash FROM item")).all()
        title, summary, content = conn.execute(
            sa.text(
                "SELECT i.title, i.summary, i.content FROM item i JOIN alert a ON a.item_id = i.id"
                " ORDER BY a.id LIMIT 1"
            )
        ).one()
    assert stories and all(story == digest for story, digest in stories)
    copy = tmp_path / "copy.xml"
    copy.write_text(
        "<?xml version='1.0'?><rss version='2.0'><channel><title>c</title>"
        "<link>https://copies.example.org/</link><item>"
        f"<title>{escape(title)}</title><link>https://copies.example.org/1</link>"
        f"<guid>copy-1</guid><description>{escape(summary or content)}</description>"
        "</item></channel></rss>"
    )
    with WebhookReceiver(secret=SECRET) as ops:
        path = one_feed(tmp_path, db_url, "copies", copy, ops)
        assert run_cli(["--config", str(path), "once", "--all"]) == 0
        assert ops.requests == []  # the story alerted before the upgrade
    with engine.connect() as conn:
        named = conn.execute(
            sa.text("SELECT a.also_reported_by FROM alert a JOIN item i ON a.item_id = i.id"
                    " WHERE i.title = :t"), {"t": title}
        ).scalars().all()  # fmt: skip
    engine.dispose()
    assert any("copies" in str(n) for n in named), named


def test_0006_adds_the_page_columns_to_items_already_stored(db_url: str) -> None:
    """A database at 0004 (the release before full text) with an item and its alert: the
    upgrade keeps both, the item's page was never asked for (NULL), and the downgrade drops
    the columns again."""
    from alembic import command

    engine = db.make_engine(db_url)
    cfg = schema._config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
        conn.execute(
            sa.text(
                "INSERT INTO item (id, feed_id, guid, title, summary, content, categories, "
                "content_hash) VALUES (1, 'f', 'g', 't', 's', 'c', '[]', 'h')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO alert (id, rule_id, item_id, rule_name, severity, terms, snippet, "
                "also_reported_by, held_back) VALUES ('a1', 'r', 1, 'R', 'high', '[]', '', "
                "'[]', 0)"
            )
        )
    assert schema.upgrade(engine).revision == schema.head()
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT page_status, page_error, title FROM item")).one()
        alerts = conn.execute(sa.text("SELECT count(*) FROM alert")).scalar()
    assert tuple(row) == (None, None, "t") and alerts == 1
    with schema._locked(engine) as conn:  # as an upgrade runs: SQLite's foreign keys off
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")  # (and every later revision on the way)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("item")}
    assert "page_status" not in columns and "title" in columns
    engine.dispose()


def test_0008_drops_the_item_indexes_no_query_reads_and_keeps_every_row(
    tmp_path: Path, db_url: str
) -> None:
    """The 0.1.0 database upgraded: its items and alerts are all still there, the three
    indexes are gone (the others stay), nothing alerts again on the next poll of the same
    feed, and the downgrade puts the indexes back."""

    load_0_1_0(db_url)
    engine = db.make_engine(db_url)

    def counts() -> list[int | None]:
        with engine.connect() as conn:
            return [conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()
                    for t in ("item", "alert", "delivery")]  # fmt: skip

    before = counts()
    schema.upgrade(engine)

    def item_indexes() -> set[str]:
        return {str(i["name"]) for i in sa.inspect(engine).get_indexes("item")}

    dropped = {"ix_item_published_at", "ix_item_content_hash", "ix_item_story"}
    assert not item_indexes() & dropped
    assert {"ix_item_feed_id", "ix_item_first_seen_at"} <= item_indexes()
    assert counts() == before and before[0]
    polls_without_alerting_again(tmp_path, db_url)
    downgrade(engine, "0007")
    assert dropped <= item_indexes()
    engine.dispose()


def test_0009_indexes_the_order_once_all_claims_in_and_keeps_every_row(
    tmp_path: Path, db_url: str
) -> None:
    """The 0.1.0 database upgraded: the feed index is there, SQLite reads the claim's order
    from it instead of sorting every feed, nothing alerts again on the next poll, and the
    downgrade takes the index away."""

    from monitor.store import feeds as feed_store

    load_0_1_0(db_url)
    engine = db.make_engine(db_url)
    schema.upgrade(engine)

    def feed_indexes() -> set[str]:
        return {str(i["name"]) for i in sa.inspect(engine).get_indexes("feed")}

    assert "ix_feed_last_fetch_at_id" in feed_indexes()
    if engine.dialect.name == "sqlite":
        t = feed_store._FEED
        claim_order = (
            sa.select(t.c.id)
            .where(t.c.enabled)
            .order_by(sa.nulls_first(t.c.last_fetch_at), t.c.id)
            .limit(10)
        )
        sql = str(claim_order.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX ix_feed_last_fetch_at_id" in plan and "TEMP B-TREE" not in plan
    polls_without_alerting_again(tmp_path, db_url)
    downgrade(engine, "0008")
    assert "ix_feed_last_fetch_at_id" not in feed_indexes()
    engine.dispose()
