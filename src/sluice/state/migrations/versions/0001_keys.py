"""Virtual keys.

Revision ID: 0001_keys
Revises: (none)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_keys"
down_revision: str | None = None
branch_labels = ("governance",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sluice_keys",
        sa.Column("key_id", sa.String(40), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("team", sa.String(255), nullable=True),
        sa.Column("user_id", sa.String(255), nullable=True),
        sa.Column("tier", sa.String(255), nullable=True),
        sa.Column("allowed_models", sa.JSON, nullable=False),
        sa.Column("limits", sa.JSON, nullable=False),
        sa.Column("budgets", sa.JSON, nullable=False),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=True),
        sa.Column("revoked_at", sa.Double, nullable=True),
    )
    op.create_index("ix_sluice_keys_key_hash", "sluice_keys", ["key_hash"], unique=True)
    op.create_index("ix_sluice_keys_tenant", "sluice_keys", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_sluice_keys_tenant", table_name="sluice_keys")
    op.drop_index("ix_sluice_keys_key_hash", table_name="sluice_keys")
    op.drop_table("sluice_keys")
