"""Worker claims, feed health and cadence, tombstones.

- feed.claimed_by, delivery.claimed_by: which worker holds the lease (scale-out metrics,
  lease expiries); feed.enabled: whether the feed is still configured;
- feed.health, health_since, last_error_kind, last_new_at, gaps, interval_s, body_hash: the
  feed's health state, its posting cadence and adaptive interval, and the hash of the last
  body parsed (a byte-identical body is not parsed again);
- tombstone: what retention leaves of a purged item, so that it never alerts again;
- schema_version 2: monitor 0.1.0 refuses a database it cannot read.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feed") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=100), nullable=True))
        batch.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("last_error_kind", sa.String(length=40), nullable=True))
        batch.add_column(
            sa.Column("health", sa.String(length=16), nullable=False, server_default="ok")
        )
        batch.add_column(sa.Column("health_since", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("last_new_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("gaps", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("interval_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("body_hash", sa.String(length=64), nullable=True))
    with op.batch_alter_table("feed") as batch:
        batch.alter_column("health", server_default=None)
        batch.alter_column("enabled", server_default=None)
    # A 0.1.0 feed that was failing is failing now (its errors were counted the same way).
    op.execute(
        "UPDATE feed SET health = 'failing', health_since = last_fetch_at "
        "WHERE consecutive_errors >= 3"
    )
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=100), nullable=True))
    op.create_table(
        "tombstone",
        sa.Column("feed_id", sa.String(length=200), nullable=False),
        sa.Column("guid", sa.String(length=2000), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=True),
        sa.Column("purged_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("feed_id", "guid"),
    )
    op.create_index(op.f("ix_tombstone_purged_at"), "tombstone", ["purged_at"], unique=False)
    op.execute("UPDATE schema_version SET version = 2")


def downgrade() -> None:
    op.execute("UPDATE schema_version SET version = 1")
    op.drop_index(op.f("ix_tombstone_purged_at"), table_name="tombstone")
    op.drop_table("tombstone")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("claimed_by")
    with op.batch_alter_table("feed") as batch:
        for name in (
            "body_hash",
            "interval_s",
            "gaps",
            "last_new_at",
            "health_since",
            "health",
            "last_error_kind",
            "enabled",
            "claimed_by",
        ):
            batch.drop_column(name)
