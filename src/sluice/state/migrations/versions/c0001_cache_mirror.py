"""The exact-cache mirror's `entries` (a SQLite file of its own: `cache.persist_path`).

Adopts the table the old raw `CREATE TABLE IF NOT EXISTS` made (same columns).

Revision ID: c0001_cache_mirror
Revises: (none; branch `cache`)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0001_cache_mirror"
down_revision: str | None = None
branch_labels = ("cache",)
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("entries"):
        return
    op.create_table(
        "entries",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("entries")
