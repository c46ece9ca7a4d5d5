"""Vector stores (retrieval): stores, their files, chunks with vectors, file batches.

Revision ID: v0001_vector_stores
Revises: (none; branch `retrieval`)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "v0001_vector_stores"
down_revision: str | None = None
branch_labels = ("retrieval",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sluice_vector_stores",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("expires_after", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("last_active_at", sa.Double(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_sluice_vector_stores_tenant", "sluice_vector_stores", ["tenant", "created_at"]
    )
    op.create_table(
        "sluice_vector_store_files",
        sa.Column("store_id", sa.String(64), primary_key=True),
        sa.Column("file_id", sa.String(128), primary_key=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("chunking", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("usage_bytes", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
    )
    op.create_table(
        "sluice_vector_store_chunks",
        sa.Column("id", sa.String(160), primary_key=True),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("file_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("heading", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("sentences", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )
    op.create_index(
        "ix_sluice_vector_store_chunks_store",
        "sluice_vector_store_chunks",
        ["store_id", "file_id"],
    )
    op.create_table(
        "sluice_vector_store_batches",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("store_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("file_ids", sa.Text(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    for name in (
        "sluice_vector_store_batches",
        "sluice_vector_store_chunks",
        "sluice_vector_store_files",
        "sluice_vector_stores",
    ):
        op.drop_table(name)
