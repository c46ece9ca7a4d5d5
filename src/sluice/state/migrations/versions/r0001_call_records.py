"""Call records (`call_records`, or the name given in config).

A database made by Sluice before migrations already has the table (from `create_all`, with
columns added since by hand-written ALTER TABLE): it is adopted, and any nullable column or
index it lacks is added. Otherwise the table is created.

Revision ID: r0001_call_records
Revises: (none; branch `records`)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from sluice.state.tables import RECORDS_INDEXED, Money

revision = "r0001_call_records"
down_revision: str | None = None
branch_labels = ("records",)
depends_on = None


def _columns() -> list[sa.Column]:  # type: ignore[type-arg]
    """The table as of this revision (frozen here; later revisions change it)."""

    def s(name: str, length: int = 255) -> sa.Column:  # type: ignore[type-arg]
        return sa.Column(name, sa.String(length), nullable=True)

    return [
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("request_id", sa.String(255), nullable=False),
        s("parent_request_id"),
        s("attempt_of"),
        sa.Column("kind", sa.String(16), nullable=False),
        s("trace_id"),
        sa.Column("ts", sa.Double(), nullable=False),
        s("tenant"),
        s("key_id"),
        s("user_id"),
        s("feature"),
        s("session"),
        s("route"),
        sa.Column("model_requested", sa.String(255), nullable=False),
        s("deployment"),
        s("provider"),
        s("upstream_model"),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("fallback_triggered", sa.Boolean(), nullable=False),
        s("cache_status", 16),
        sa.Column("cache_similarity", sa.Double(), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", Money(), nullable=True),
        sa.Column("cost_saved_usd", Money(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=False),
        sa.Column("ttft_ms", sa.Double(), nullable=True),
        s("finish_reason", 32),
        sa.Column("status", sa.Integer(), nullable=False),
        s("error_type", 64),
        s("system_prompt_hash", 64),
        sa.Column("input_preview", sa.Text(), nullable=True),
        sa.Column("output_preview", sa.Text(), nullable=True),
        sa.Column("route_decision", sa.Text(), nullable=True),
        sa.Column("routing_saved_usd", Money(), nullable=True),
    ]


def _name() -> str:
    return str(context.config.attributes["tables"]["records"])


def upgrade() -> None:
    name = _name()
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(name):
        op.create_table(name, *_columns())
        have_indexes: set[str] = set()
    else:  # made by create_all before migrations: adopt it
        have = {c["name"] for c in inspector.get_columns(name)}
        for column in _columns():
            if column.name not in have and column.nullable:
                op.add_column(name, column)
        have_indexes = {str(i["name"]) for i in inspector.get_indexes(name)}
    for indexed in RECORDS_INDEXED:
        index = f"ix_{name}_{indexed}"
        if index not in have_indexes:
            op.create_index(index, name, [indexed])


def downgrade() -> None:
    op.drop_table(_name())
