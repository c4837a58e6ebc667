"""Feed health messages: one row per change of a feed's health state (feedhealth), delivered
through the outbox like alerts (delivery.health_id; delivery.alert_id may now be empty), and
the feed's own title (feed.title), which the messages show.

Nothing is written for the feeds as they are: a feed already failing stays failing without a
message (0002 set its state), so an upgrade never tells an old change again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedhealth",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("feed_id", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("previous", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=True),
        sa.Column("consecutive_errors", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.Column("last_new_at", sa.DateTime(), nullable=True),
        sa.Column("feed_url", sa.String(), nullable=False),
        sa.Column("feed_title", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_feedhealth_created_at"), "feedhealth", ["created_at"], unique=False)
    op.create_index(op.f("ix_feedhealth_feed_id"), "feedhealth", ["feed_id"], unique=False)
    op.add_column("feed", sa.Column("title", sa.String(), nullable=True))
    # SQLite rebuilds the table (batch mode); PostgreSQL alters it in place.
    with op.batch_alter_table("delivery") as batch:
        batch.alter_column("alert_id", existing_type=sa.String(length=40), nullable=True)
        batch.add_column(sa.Column("health_id", sa.String(length=40), nullable=True))
        batch.create_index(op.f("ix_delivery_health_id"), ["health_id"], unique=False)
        batch.create_unique_constraint("uq_delivery_health_ch", ["health_id", "channel"])
        batch.create_foreign_key("fk_delivery_health_id", "feedhealth", ["health_id"], ["id"])


def downgrade() -> None:
    op.execute("DELETE FROM delivery WHERE health_id IS NOT NULL")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_constraint("fk_delivery_health_id", type_="foreignkey")
        batch.drop_constraint("uq_delivery_health_ch", type_="unique")
        batch.drop_index(op.f("ix_delivery_health_id"))
        batch.drop_column("health_id")
        batch.alter_column("alert_id", existing_type=sa.String(length=40), nullable=False)
    with op.batch_alter_table("feed") as batch:
        batch.drop_column("title")
    op.drop_index(op.f("ix_feedhealth_feed_id"), table_name="feedhealth")
    op.drop_index(op.f("ix_feedhealth_created_at"), table_name="feedhealth")
    op.drop_table("feedhealth")
