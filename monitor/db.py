"""Engine, sessions and schema for SQLite (embedded default) and PostgreSQL (scale-out).

The same SQLModel code runs on both. SQLite gets WAL (readers never block the writer), a busy
timeout (a second process waits instead of failing with "database is locked") and foreign keys.
The schema is made and upgraded by Alembic revisions: see monitor.schema.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine, make_url  # Engine: re-exported for the callers
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from monitor import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from monitor.errors import StoreError

T = TypeVar("T")


def normalize_url(url: str) -> str:
    """Accept postgresql:// and postgres:// and pick the psycopg 3 driver we ship."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint; WAL keeps commits atomic
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _upsert(dialect: str) -> Any:
    """The dialect's INSERT, which has ON CONFLICT. PostgreSQL's is imported when used: the
    dialect's package is 40 ms of every start on SQLite."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert
    return sqlite_insert


def insert_ignore(conn: sa.Connection | Session, table: Any, **values: object) -> bool:
    """INSERT … ON CONFLICT DO NOTHING against every unique constraint of the table, on
    either backend; whether a row was inserted."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    stmt = _upsert(bind.dialect.name)(table).values(**values).on_conflict_do_nothing()
    # RETURNING rather than rowcount: psycopg reports -1 for INSERT ... ON CONFLICT here.
    return conn.execute(stmt.returning(sa.literal(1))).first() is not None


def insert_ignore_many(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Many rows by one INSERT … ON CONFLICT DO NOTHING, executed for all of them at once
    (executemany on the session's transaction). Rows conflicting with one another: the
    first wins."""
    insert_many(session, table, rows, ignore_conflicts=True)


def insert_many(
    session: Session, table: Any, rows: list[dict[str, Any]], *, ignore_conflicts: bool = False
) -> None:
    """Many rows by one INSERT, executemany on the session's transaction; a conflict raises
    (IntegrityError) unless `ignore_conflicts` (then ON CONFLICT DO NOTHING).

    The statement goes to the driver as it is, the values through each column's own bind
    processor (what Core would send): Core's per-row parameter handling cost more than
    SQLite's work for the story index's ~50 rows an item. A table with a Python-side default
    for a column the rows leave out takes Core's path, which fills it in."""
    if not rows:
        return
    names = list(rows[0])
    if any(len(r) != len(names) for r in rows):
        _core_insert(session, table, rows, ignore_conflicts)
        return
    insert_tuples(
        session, table, names, [tuple(r[n] for n in names) for r in rows],
        ignore_conflicts=ignore_conflicts,
    )  # fmt: skip


def insert_tuples(
    session: Session,
    table: Any,
    names: Sequence[str],
    rows: list[tuple[Any, ...]],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """insert_many with each row the values of `names`, in that order: the writer's items
    (40,000 a cycle) are built as tuples, not dicts to take apart again."""
    if not rows:
        return
    conn = session.connection()
    t: sa.Table = getattr(table, "__table__", table)
    if any(c.name not in names and c.default is not None for c in t.columns):
        rows_d = [dict(zip(names, r, strict=True)) for r in rows]
        _core_insert(session, table, rows_d, ignore_conflicts)
        return
    mark, prep = _mark(conn), conn.dialect.identifier_preparer
    sql = (
        f"INSERT INTO {prep.format_table(t)} ({', '.join(prep.quote(n) for n in names)}) "
        f"VALUES ({', '.join([mark] * len(names))})"
        + (" ON CONFLICT DO NOTHING" if ignore_conflicts else "")
    )
    conn.exec_driver_sql(sql, _processed_rows(conn, t, names, rows))


def _core_insert(
    session: Session, table: Any, rows: list[dict[str, Any]], ignore_conflicts: bool
) -> None:
    """The rows by Core's INSERT (ragged rows; Python-side defaults to fill in)."""
    conn = session.connection()
    t: sa.Table = getattr(table, "__table__", table)
    insert = _upsert(conn.dialect.name)
    conn.execute(insert(t).on_conflict_do_nothing() if ignore_conflicts else t.insert(), rows)


def update_many(session: Session, table: Any, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """UPDATE … WHERE `key` = each row's, one executemany for all of them (every row names
    the same columns), the values through the columns' bind processors as in insert_many:
    the writer's feed rows, 50 a batch, cost a tenth of what the ORM's flush of the same
    changes did."""
    if not rows:
        return
    conn = session.connection()
    t: sa.Table = getattr(table, "__table__", table)
    names = [n for n in rows[0] if n != key]
    mark, prep = _mark(conn), conn.dialect.identifier_preparer
    sql = (
        f"UPDATE {prep.format_table(t)} SET {', '.join(f'{prep.quote(n)} = {mark}' for n in names)}"
        f" WHERE {prep.quote(key)} = {mark}"
    )
    keyed = [*names, key]
    conn.exec_driver_sql(
        sql, _processed_rows(conn, t, keyed, [tuple(r[n] for n in keyed) for r in rows])
    )


def _mark(conn: sa.Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _processed_rows(
    conn: sa.Connection, t: sa.Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """The rows (values of `names`, in order) as the driver takes them: each column through
    its bind processor. Columns are taken out and put back by zip, in C."""
    dialect = conn.dialect
    procs = [t.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names]
    if all(p is None for p in procs):
        return list(rows)
    columns = [_processed(p, col) for p, col in zip(procs, zip(*rows, strict=True), strict=True)]
    return list(zip(*columns, strict=True))


def _processed(proc: Any, column: Sequence[Any]) -> Sequence[Any]:
    """A column's values through its bind processor, each distinct value once (the rows of
    one batch share their timestamps; half a cycle's items have no categories, and 6,000
    items of the bench's feeds have 406 distinct lists)."""
    if proc is None:
        return column
    # Keyed by type and value: 1 and True are equal, and JSON writes them apart.
    keys = list(zip(map(type, column), column, strict=True))
    try:  # each distinct value once, taken apart and put back in C (90,000 band rows a cycle)
        distinct = dict.fromkeys(keys)
    except TypeError:  # an unhashable value (a JSON list)
        distinct = None
    # Tuples are JSON lists (an item's categories): one key for equal ones only if they are of
    # strings ((1,) and (True,) are equal). Asked of the distinct ones.
    if distinct is not None and all(
        type(x) is str for _kind, v in distinct if isinstance(v, tuple) for x in v
    ):
        once = {k: proc(k[1]) for k in distinct}
        return list(map(once.__getitem__, keys))
    done: dict[Any, Any] = {}
    lists: dict[tuple[str, ...], Any] = {}  # JSON lists of strings (categories, terms)
    out = []
    for kind, v in keys:
        if isinstance(v, list | tuple):  # a JSON list: reused only if of strings, keyed by
            # its tuple ([1] and [True] are equal, and would be one key)
            if not all(type(x) is str for x in v):
                out.append(proc(v))
                continue
            key = tuple(v)
            got = lists.get(key)
            if got is None:
                got = lists[key] = proc(v)
            out.append(got)
            continue
        try:
            out.append(done[kind, v])
        except KeyError:
            done[kind, v] = got = proc(v)
            out.append(got)
        except TypeError:  # unhashable, not reused
            out.append(proc(v))
    return out


def chunks(values: Sequence[T], size: int = 500) -> list[Sequence[T]]:
    """IN lists and multi-row VALUES within every backend's limits on parameters."""
    return [values[i : i + size] for i in range(0, len(values), size)]


def among(
    conn: sa.Connection, columns: Sequence[sa.ColumnElement[Any]], values: Sequence[Any]
) -> list[sa.ColumnElement[bool]]:
    """Conditions that together select the rows whose `columns` hold one of `values` (a
    tuple a value when there are several columns); the caller runs its query once per
    condition.

    SQLite: one condition, the values one JSON parameter that json_each reads, so a
    thousand keys are neither a thousand parameters for SQLAlchemy to render (a third of the
    writer's Python time under yappi in a cycle of new items) nor, for two columns, a
    product of two IN lists for the index to search (25 feeds x 500 guids); SQLite searches
    the index once a value (a 500-item batch: 5.7 -> 1.4 ms). Elsewhere: IN lists in chunks,
    and for several columns each column's own list, a superset the caller narrows."""
    if not values:
        return []
    if conn.dialect.name == "sqlite":
        each = sa.func.json_each(sa.literal(json.dumps(list(values)))).table_valued("value")
        if len(columns) == 1:
            return [columns[0].in_(sa.select(each.c.value))]
        parts = [sa.func.json_extract(each.c.value, f"$[{i}]") for i in range(len(columns))]
        return [sa.tuple_(*columns).in_(sa.select(*parts))]
    if len(columns) == 1:
        return [columns[0].in_(list(part)) for part in chunks(values)]
    return [
        sa.and_(*(c.in_(list({v[i] for v in part})) for i, c in enumerate(columns)))
        for part in chunks(values)
    ]


def ping(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False


@contextmanager
def session(engine: Engine) -> Iterator[Session]:
    """A session whose database errors come out as StoreError."""
    try:
        with Session(engine, expire_on_commit=False) as s:
            yield s
    except SQLAlchemyError as exc:
        raise StoreError(describe(exc)) from exc


def describe(exc: SQLAlchemyError) -> str:
    """The driver's message without the SQL statement and parameters (they may hold text
    from feeds, and the URL may hold a password)."""
    orig = getattr(exc, "orig", None)
    detail = orig if orig is not None else (exc.__class__.__doc__ or "")
    return f"{type(exc).__name__}: {detail}"[:500]


def redact_url(url: str) -> str:
    """The database URL with any password replaced, for logs and messages."""
    try:
        return make_url(normalize_url(url)).render_as_string(hide_password=True)
    except Exception:
        return "<database url>"
