"""Semantic-cache entries (`sluice_semantic_cache`, or the name given in config).

Adopts a table made by Sluice's old `create_all` (same columns), else creates it.

Revision ID: s0001_semantic_cache
Revises: (none; branch `semantic`)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "s0001_semantic_cache"
down_revision: str | None = None
branch_labels = ("semantic",)
depends_on = None


def _name() -> str:
    return str(context.config.attributes["tables"]["semantic"])


def upgrade() -> None:
    name = _name()
    inspector = sa.inspect(op.get_bind())
    if inspector.has_table(name):
        return  # made by create_all before migrations: the same table
    op.create_table(
        name,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(255), nullable=False),
        sa.Column("route", sa.String(255), nullable=False),
        sa.Column("scope", sa.String(96), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
    )
    op.create_index(f"ix_{name}_expires_at", name, ["expires_at"])


def downgrade() -> None:
    op.drop_table(_name())
