"""Call records: grounded chat — `retrieval_tokens` (context tokens added to the prompt),
`retrieval_cost_usd` (their cost at the input price), `retrieval_sources` (sources given) and
`grounded` (the citation check: "ok", "unsupported:N", "no_citations", "no_sources", "cut";
sluice.retrieval).

Revision ID: r0005_retrieval
Revises: r0004_guards
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

from sluice.state.tables import Money

revision = "r0005_retrieval"
down_revision: str | None = "r0004_guards"
branch_labels = None
depends_on = None

_COLUMNS = ("retrieval_tokens", "retrieval_cost_usd", "retrieval_sources", "grounded")


def _name() -> str:
    return str(context.config.attributes["tables"]["records"])


def _column(name: str) -> sa.Column[object]:
    kind: sa.types.TypeEngine[object] = {  # type: ignore[assignment]
        "retrieval_tokens": sa.BigInteger(),
        "retrieval_cost_usd": Money(),
        "retrieval_sources": sa.Integer(),
        "grounded": sa.String(32),
    }[name]
    return sa.Column(name, kind, nullable=True)


def upgrade() -> None:
    name = _name()
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(name)}
    for column in _COLUMNS:
        if column not in have:
            op.add_column(name, _column(column))


def downgrade() -> None:
    with op.batch_alter_table(_name()) as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column)
