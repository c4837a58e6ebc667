"""The schema of monitor 0.1.0, exactly as it released it (SQLModel's create_all at commit
0dc4b88, and its schema_version row). A 0.1.0 database is recognised and stamped with this
revision (monitor.schema), so it upgrades in place from here.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("etag", sa.String(), nullable=True),
        sa.Column("last_modified", sa.String(), nullable=True),
        sa.Column("initialized", sa.Boolean(), nullable=False),
        sa.Column("last_fetch_at", sa.DateTime(), nullable=True),
        sa.Column("last_success_at", sa.DateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("consecutive_errors", sa.Integer(), nullable=False),
        sa.Column("last_item_count", sa.Integer(), nullable=False),
        sa.Column("total_items", sa.Integer(), nullable=False),
        sa.Column("next_due_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_feed_next_due_at"), "feed", ["next_due_at"], unique=False)
    op.create_table(
        "item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("feed_id", sa.String(length=200), nullable=False),
        sa.Column("guid", sa.String(length=2000), nullable=False),
        sa.Column("url", sa.String(), nullable=True),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("summary", sa.String(), nullable=False),
        sa.Column("content", sa.String(), nullable=False),
        sa.Column("author", sa.String(), nullable=True),
        sa.Column("categories", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("language", sa.String(), nullable=True),
        sa.Column("published_at", sa.DateTime(), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("feed_id", "guid", name="uq_item_feed_guid"),
    )
    op.create_index(op.f("ix_item_content_hash"), "item", ["content_hash"], unique=False)
    op.create_index(op.f("ix_item_feed_id"), "item", ["feed_id"], unique=False)
    op.create_index(op.f("ix_item_first_seen_at"), "item", ["first_seen_at"], unique=False)
    op.create_index(op.f("ix_item_published_at"), "item", ["published_at"], unique=False)
    op.create_table(
        "rulestate",
        sa.Column("rule_id", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("active_since", sa.DateTime(), nullable=True),
        sa.Column("backfilled", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id"),
    )
    op.create_table(
        "schema_version",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "alert",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("rule_id", sa.String(length=200), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("rule_name", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=True),
        sa.Column("snippet", sa.String(), nullable=False),
        sa.Column("also_reported_by", sa.JSON(), nullable=True),
        sa.Column("story_url", sa.String(length=2000), nullable=True),
        sa.Column("story_hash", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["item.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule_id", "item_id", name="uq_alert_rule_item"),
        sa.UniqueConstraint("rule_id", "story_hash", name="uq_alert_rule_hash"),
        sa.UniqueConstraint("rule_id", "story_url", name="uq_alert_rule_url"),
    )
    op.create_index(op.f("ix_alert_created_at"), "alert", ["created_at"], unique=False)
    op.create_index(op.f("ix_alert_item_id"), "alert", ["item_id"], unique=False)
    op.create_index(op.f("ix_alert_rule_id"), "alert", ["rule_id"], unique=False)
    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("digest_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alert.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "channel", name="uq_delivery_alert_ch"),
    )
    op.create_index(op.f("ix_delivery_alert_id"), "delivery", ["alert_id"], unique=False)
    op.create_index(op.f("ix_delivery_digest_id"), "delivery", ["digest_id"], unique=False)
    op.create_index(
        op.f("ix_delivery_next_attempt_at"), "delivery", ["next_attempt_at"], unique=False
    )
    op.create_index(op.f("ix_delivery_status"), "delivery", ["status"], unique=False)
    # 0.1.0 recorded its schema version here (1). The next revision sets it to 2, so that
    # monitor 0.1.0, which knows only 1, refuses an upgraded database instead of using it.
    op.execute("INSERT INTO schema_version (version) VALUES (1)")


def downgrade() -> None:
    op.drop_index(op.f("ix_delivery_status"), table_name="delivery")
    op.drop_index(op.f("ix_delivery_next_attempt_at"), table_name="delivery")
    op.drop_index(op.f("ix_delivery_digest_id"), table_name="delivery")
    op.drop_index(op.f("ix_delivery_alert_id"), table_name="delivery")
    op.drop_table("delivery")
    op.drop_index(op.f("ix_alert_rule_id"), table_name="alert")
    op.drop_index(op.f("ix_alert_item_id"), table_name="alert")
    op.drop_index(op.f("ix_alert_created_at"), table_name="alert")
    op.drop_table("alert")
    op.drop_table("schema_version")
    op.drop_table("rulestate")
    op.drop_index(op.f("ix_item_published_at"), table_name="item")
    op.drop_index(op.f("ix_item_first_seen_at"), table_name="item")
    op.drop_index(op.f("ix_item_feed_id"), table_name="item")
    op.drop_index(op.f("ix_item_content_hash"), table_name="item")
    op.drop_table("item")
    op.drop_index(op.f("ix_feed_next_due_at"), table_name="feed")
    op.drop_table("feed")
