"""Call records: `guards` — the guard verdicts of a call ("name=verdict[:rule], ...", as in
the `x-sluice-guard` header; sluice.guardrails).

Revision ID: r0004_guards
Revises: r0003_cache_decision
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "r0004_guards"
down_revision: str | None = "r0003_cache_decision"
branch_labels = None
depends_on = None


def _name() -> str:
    return str(context.config.attributes["tables"]["records"])


def upgrade() -> None:
    name = _name()
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(name)}
    if "guards" not in have:
        op.add_column(name, sa.Column("guards", sa.String(1024), nullable=True))


def downgrade() -> None:
    op.drop_column(_name(), "guards")
