"""Uploaded files (`sluice_files`).

Revision ID: f0001_files
Revises: (none; branch `files`)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "f0001_files"
down_revision: str | None = None
branch_labels = ("files",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sluice_files",
        sa.Column("tenant", sa.String(255), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("filename", sa.String(512), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
    )
    op.create_index("ix_sluice_files_tenant_created", "sluice_files", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_table("sluice_files")
