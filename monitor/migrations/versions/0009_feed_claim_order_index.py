"""An index for the order `once --all` claims feeds in: last_fetch_at, then id.

`--all` takes the least recently fetched feeds first (store.claim_feeds), a page at a time,
and without an index each claim read and sorted every feed row: 1.4 ms a claim at 2,000
feeds, growing with the feed count (some 120 claims a cycle of 2,000 feeds), against
0.45 ms reading the index in order (SQLite sorts NULLs first, as the claim asks). Only an
index is added: no row changes, nothing alerts again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

NAME = "ix_feed_last_fetch_at_id"


def upgrade() -> None:
    op.create_index(NAME, "feed", ["last_fetch_at", "id"])


def downgrade() -> None:
    op.drop_index(NAME, "feed")
