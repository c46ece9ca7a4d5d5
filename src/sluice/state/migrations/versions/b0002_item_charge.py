"""Batch items: `charge`, the item's spend-ledger row written in the transaction that
writes its result and cleared once the ledger has it (sluice.state.charges).

Revision ID: b0002_item_charge
Revises: b0001_batches
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0002_item_charge"
down_revision: str | None = "b0001_batches"
branch_labels = None
depends_on = None

TABLE = "sluice_batch_items"


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}
    if "charge" not in have:
        op.add_column(TABLE, sa.Column("charge", sa.Text(), nullable=True))
    due = sa.text("charge IS NOT NULL")
    op.create_index(
        "ix_sluice_batch_items_charge",
        TABLE,
        ["batch_id"],
        sqlite_where=due,
        postgresql_where=due,
    )


def downgrade() -> None:
    op.drop_index("ix_sluice_batch_items_charge", TABLE)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("charge")
