"""Call records: `usage_source` — where a call's token counts came from ("provider", or
"estimated" for a stream cut before the provider's usage arrived).

Revision ID: r0002_usage_source
Revises: r0001_call_records
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "r0002_usage_source"
down_revision: str | None = "r0001_call_records"
branch_labels = None
depends_on = None


def _name() -> str:
    return str(context.config.attributes["tables"]["records"])


def upgrade() -> None:
    name = _name()
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(name)}
    if "usage_source" not in have:  # a table adopted from before migrations may have it
        op.add_column(name, sa.Column("usage_source", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column(_name(), "usage_source")
