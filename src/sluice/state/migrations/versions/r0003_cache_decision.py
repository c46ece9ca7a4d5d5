"""Call records: `cache_score` and `cache_decision` — the semantic cache's pair-verifier score
and its decision in words ("semantic: verifier 0.95 >= 0.93", "miss: guard: number").

Revision ID: r0003_cache_decision
Revises: r0002_usage_source
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "r0003_cache_decision"
down_revision: str | None = "r0002_usage_source"
branch_labels = None
depends_on = None


def _name() -> str:
    return str(context.config.attributes["tables"]["records"])


def upgrade() -> None:
    name = _name()
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(name)}
    if "cache_score" not in have:
        op.add_column(name, sa.Column("cache_score", sa.Double(), nullable=True))
    if "cache_decision" not in have:
        op.add_column(name, sa.Column("cache_decision", sa.String(120), nullable=True))


def downgrade() -> None:
    op.drop_column(_name(), "cache_decision")
    op.drop_column(_name(), "cache_score")
