"""Spend ledger: `once_key` (unique, nullable), so work charged off the request path — a
batch item, an async job — is written to the ledger exactly once whatever crashes
(sluice.state.charges). Rows of ordinary calls leave it NULL.

Revision ID: 0003_ledger_once
Revises: 0002_spend_ledger
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_ledger_once"
down_revision: str | None = "0002_spend_ledger"
branch_labels = None
depends_on = None

TABLE = "sluice_spend_ledger"


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}
    if "once_key" not in have:
        op.add_column(TABLE, sa.Column("once_key", sa.String(160), nullable=True))
    op.create_index("ux_sluice_spend_ledger_once", TABLE, ["once_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_sluice_spend_ledger_once", TABLE)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("once_key")
