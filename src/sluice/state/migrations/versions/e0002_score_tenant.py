"""Online scores: `tenant` — the judged call's tenant, so a second tenant that sends the same
caller-chosen request id (`x-sluice-request-id`) cannot replace the first one's score.

Revision ID: e0002_score_tenant
Revises: e0001_eval
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e0002_score_tenant"
down_revision: str | None = "e0001_eval"
branch_labels = None
depends_on = None

_TABLE = "sluice_online_scores"


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(_TABLE)}
    if "tenant" not in have:
        op.add_column(_TABLE, sa.Column("tenant", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(_TABLE) as batch:
        batch.drop_column("tenant")
