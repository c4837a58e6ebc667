"""Full text: what became of an item's linked page (item.page_status, item.page_error).

NULL in both for items stored before (and for feeds without full text): their page was never
asked for. Nothing else changes, so nothing already alerted alerts again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("item", sa.Column("page_status", sa.String(length=16), nullable=True))
    op.add_column("item", sa.Column("page_error", sa.String(), nullable=True))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+), not batch mode: batch mode copies the
    # table, which alert's foreign key to item forbids while rows refer to it.
    op.drop_column("item", "page_error")
    op.drop_column("item", "page_status")
