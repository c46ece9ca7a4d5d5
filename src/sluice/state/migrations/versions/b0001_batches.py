"""Batches and their items (`sluice_batches`, `sluice_batch_items`).

Revision ID: b0001_batches
Revises: (none; branch `batch`)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b0001_batches"
down_revision: str | None = None
branch_labels = ("batch",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sluice_batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("wire", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input_file_id", sa.String(64), nullable=True),
        sa.Column("output_file_id", sa.String(64), nullable=True),
        sa.Column("error_file_id", sa.String(64), nullable=True),
        sa.Column("completion_window", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("times", sa.JSON(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.Column("identity", sa.JSON(), nullable=False),
        sa.Column("provider_batch", sa.JSON(), nullable=True),
    )
    op.create_index("ix_sluice_batches_tenant_created", "sluice_batches", ["tenant", "created_at"])
    op.create_index("ix_sluice_batches_status", "sluice_batches", ["status"])
    op.create_table(
        "sluice_batch_items",
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("idx", sa.Integer(), primary_key=True),
        sa.Column("custom_id", sa.String(512), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.Double(), nullable=True),
    )
    op.create_index(
        "ux_sluice_batch_items_custom",
        "sluice_batch_items",
        ["batch_id", "custom_id"],
        unique=True,
    )
    op.create_index("ix_sluice_batch_items_state", "sluice_batch_items", ["state", "batch_id"])


def downgrade() -> None:
    op.drop_table("sluice_batch_items")
    op.drop_table("sluice_batches")
