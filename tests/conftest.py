"""Shared fixtures: databases (a new SQLite file, a new PostgreSQL database), feed server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import structlog

from tests.feedserver import FeedServer

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
PG_URL = os.environ.get("MONITOR_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def _yaml_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("yaml-cache")


@pytest.fixture(autouse=True)
def _test_yaml_cache(monkeypatch: pytest.MonkeyPatch, _yaml_cache: Path) -> None:
    """The YAML parse cache in a folder of this run (the daemons the tests start inherit it),
    never the user's ~/.cache; shared by the tests, so most loads take the cached path."""
    monkeypatch.setenv("MONITOR_CACHE_DIR", str(_yaml_cache))


@pytest.fixture(autouse=True)
def _uncached_loggers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI configures structlog to cache each logger on first use; in one test process that
    would pin module loggers to whichever configuration ran first and blind capture_logs in every
    later test. Caching off, and the defaults back after each test."""
    configure = structlog.configure
    monkeypatch.setattr(
        structlog,
        "configure",
        lambda **kw: configure(**{**kw, "cache_logger_on_first_use": False}),
    )
    yield
    structlog.reset_defaults()


def _pg_admin() -> sa.Engine | None:
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as c:
            c.execute(sa.text("SELECT 1"))
        return engine
    except sa.exc.OperationalError:
        engine.dispose()
        return None


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'monitor.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for this test, dropped afterwards. In CI the server
    must answer: there it is a failure, never a skip."""
    admin = _pg_admin()
    if admin is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_URL} does not answer (CI must start it)")
        pytest.skip(f"PostgreSQL at {PG_URL} does not answer")
    name = f"monitor_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Both backends: the same test runs on a SQLite file and on PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    with FeedServer() as server:
        yield server
