"""Schema migrations with Alembic (monitor/migrations/versions/), run by `monitor db upgrade`
and at the start of `run` and `once`.

- **One process at a time**: the whole upgrade runs under a lock, a PostgreSQL advisory
  lock held for the migration's transaction, or SQLite's write lock (BEGIN IMMEDIATE), so
  workers started together never race; whoever comes second finds the work done.
- **Recognising 0.1.0**: a database with monitor's tables, `schema_version` 1 and no
  `alembic_version` was written by 0.1.0; it is stamped with the baseline revision (0001,
  that very schema) and upgraded from there. An empty database is built from 0001 up.
- **Refusing what we do not know**: a revision this monitor has no script for (a newer
  release wrote it), or tables that are neither empty nor 0.1.0's, stop the start with a
  message that says so; nothing is changed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.db import describe
from monitor.errors import StoreError

if TYPE_CHECKING:
    from alembic.config import Config

log = structlog.get_logger("monitor.schema")

BASELINE = "0001"  # monitor 0.1.0's schema
TABLES_0_1_0 = frozenset({"feed", "item", "alert", "delivery", "rulestate", "schema_version"})
_LOCK_KEY = 0x6D6F6E69746F72  # "monitor": the advisory lock's key on PostgreSQL


# The newest revision. A start finds the database at it with one query and never imports
# Alembic (a tenth of a second of every `monitor once`); tests/test_migrations.py checks it
# against the scripts.
HEAD = "0009"


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("monitor") / "migrations"))
    return cfg


def head() -> str:
    """The newest revision this monitor knows, from the scripts."""
    from alembic.script import ScriptDirectory

    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The database's revision; None for a database Alembic has not stamped (empty or 0.1.0)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True, slots=True)
class Upgrade:
    previous: str | None  # the revision found (a 0.1.0 database: the baseline); None: empty
    revision: str  # the revision now

    @property
    def changed(self) -> bool:
        return self.previous != self.revision


def upgrade(engine: Engine) -> Upgrade:
    """Bring the schema to the newest revision. StoreError, with nothing changed, for a
    database this monitor cannot upgrade."""
    if _at_head(engine):
        return Upgrade(HEAD, HEAD)
    _without_mako_highlighting()
    from alembic import command

    try:
        with _locked(engine) as conn:
            before = _prepare(conn)
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        done = Upgrade(before, head())
        if done.changed:
            log.info("schema_upgraded", previous=before or "empty", revision=done.revision)
        return done
    except SQLAlchemyError as exc:
        raise StoreError(f"database upgrade failed: {describe(exc)}") from exc


def _without_mako_highlighting() -> None:
    """Importing alembic imports Mako (its revision-file templates), and Mako's exceptions
    module imports its Pygments plugin when Pygments is installed (rich brings it): the HTML,
    JavaScript and CSS lexers, 0.09 s of a new database's start-up on the daemon's critical
    path, for the syntax highlighting of Mako's HTML error pages, which nothing here renders.
    Marked missing, Mako takes the fallback it has for a missing Pygments (html_escape)."""
    if "mako.exceptions" not in sys.modules:
        sys.modules.setdefault("mako.ext.pygmentplugin", None)  # type: ignore[arg-type]


def _at_head(engine: Engine) -> bool:
    """The database is at HEAD already (the usual start); False when in any doubt."""
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return False
            found = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
            return list(found) == [HEAD]
    except SQLAlchemyError:
        return False


def _prepare(conn: sa.Connection) -> str | None:
    """Stamp a 0.1.0 database; refuse a newer or a foreign one. The revision it is at."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is not None:
        try:
            script.get_revision(revision)
        except Exception:
            raise StoreError(
                f"the database's schema (revision {revision}) is newer than this monitor, "
                f"which knows revisions up to {head()}: run a newer monitor, or restore a "
                "backup taken before the upgrade"
            ) from None
        return revision
    tables = set(sa.inspect(conn).get_table_names())
    if not tables:
        return None  # a new database: built from the baseline up
    if not tables >= TABLES_0_1_0:
        missing = ", ".join(sorted(TABLES_0_1_0 - tables))
        raise StoreError(
            f"the database holds tables that are not monitor's (no {missing}): "
            "point `database:` at an empty database or one monitor wrote"
        )
    version = conn.execute(sa.text("SELECT max(version) FROM schema_version")).scalar()
    if version != 1:
        raise StoreError(
            f"the database says schema version {version} but has no migration history: "
            "it was not written by a monitor release this one can upgrade"
        )
    cfg = _config()
    cfg.attributes["connection"] = conn
    command.stamp(cfg, BASELINE)
    return BASELINE


@contextmanager
def _locked(engine: Engine) -> Iterator[sa.Connection]:
    """A connection in a transaction that holds the migration lock until it commits."""
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        elif sqlite:
            # Batch mode rebuilds a table to alter it (copy, drop, rename): with foreign keys
            # enforced, dropping a referenced table would fail. Off for the migration (only
            # outside a transaction does the pragma take), checked once it is done.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, waited for (busy_timeout)
        try:
            yield conn
            if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise StoreError("the upgrade would break references between rows; undone")
            conn.commit()
        finally:
            conn.rollback()  # a no-op after the commit
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
