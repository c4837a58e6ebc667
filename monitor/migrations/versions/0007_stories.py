"""Stories (issue 14): an item's story, the window's members and their LSH band keys, and an
alert's sources.

Existing items get their content hash as their story, which is what an alert's story_hash
already held: an exact copy of an item stored before the upgrade folds into its alert as
before. The window's index starts empty (near copies of items older than the upgrade are
not found; exact ones are).

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("item", sa.Column("story", sa.String(length=64), nullable=True))
    op.create_index("ix_item_story", "item", ["story"])
    op.execute("UPDATE item SET story = content_hash")
    op.add_column("alert", sa.Column("sources", sa.JSON(), nullable=True))
    op.create_table(
        "story_member",
        sa.Column("item_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("story", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("sketch", sa.LargeBinary(), nullable=True),
        sa.Column("seen_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_story_member_url", "story_member", ["url"])
    op.create_index("ix_story_member_content_hash", "story_member", ["content_hash"])
    op.create_index("ix_story_member_seen_at", "story_member", ["seen_at"])
    op.create_table(
        "story_band",
        sa.Column("band", sa.String(length=40), primary_key=True),
        sa.Column("item_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seen_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_story_band_seen_at", "story_band", ["seen_at"])


def downgrade() -> None:
    op.drop_table("story_band")
    op.drop_table("story_member")
    with op.batch_alter_table("alert") as batch:
        batch.drop_column("sources")
    op.drop_index("ix_item_story", "item")
    with op.batch_alter_table("item") as batch:
        batch.drop_column("story")
