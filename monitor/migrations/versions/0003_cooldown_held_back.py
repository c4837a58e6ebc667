"""Cooldown accounting: the matches a rule's cooldown held back since its last alert
(rulestate.held_back), and on each alert how many it held back before it (alert.held_back).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends (a server default fills the existing rows; it stays,
    # harmless: the models always write the value).
    for table in ("rulestate", "alert"):
        op.add_column(
            table, sa.Column("held_back", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    for table in ("alert", "rulestate"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("held_back")
