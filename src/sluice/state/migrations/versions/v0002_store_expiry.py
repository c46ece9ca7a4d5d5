"""Vector stores: `expired_at`, set once when a store's `expires_after` ran out (its chunks
are freed then; sluice.retrieval.expiry).

Revision ID: v0002_store_expiry
Revises: v0001_vector_stores
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0002_store_expiry"
down_revision: str | None = "v0001_vector_stores"
branch_labels = None
depends_on = None


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("sluice_vector_stores")}
    if "expired_at" not in have:
        op.add_column("sluice_vector_stores", sa.Column("expired_at", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sluice_vector_stores") as batch:
        batch.drop_column("expired_at")
