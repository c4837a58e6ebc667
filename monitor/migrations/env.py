"""Alembic's environment for monitor: always given a connection by monitor.schema (which holds
the migration lock on it), never a URL; SQLite through batch mode (ALTER TABLE is limited)."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

from monitor import db  # noqa: F401  (registers every table on SQLModel.metadata)

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
