"""Spend ledger: one row per settled call (who, what model, tokens, USD).

Revision ID: 0002_spend_ledger
Revises: 0001_keys
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_spend_ledger"
down_revision: str | None = "0001_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sluice_spend_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("team", sa.String(255), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("feature", sa.String(255), nullable=True),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("deployment", sa.String(255), nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Numeric(20, 10), nullable=True),
    )
    op.create_index("ix_sluice_spend_ledger_ts", "sluice_spend_ledger", ["ts"])
    op.create_index("ix_sluice_spend_ledger_tenant_ts", "sluice_spend_ledger", ["tenant", "ts"])


def downgrade() -> None:
    op.drop_index("ix_sluice_spend_ledger_tenant_ts", "sluice_spend_ledger")
    op.drop_index("ix_sluice_spend_ledger_ts", "sluice_spend_ledger")
    op.drop_table("sluice_spend_ledger")
