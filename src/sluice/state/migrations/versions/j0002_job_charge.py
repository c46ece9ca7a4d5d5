"""Async jobs: `charge`, the job's spend-ledger row written with its result and cleared
once the ledger has it (sluice.state.charges).

Revision ID: j0002_job_charge
Revises: j0001_jobs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "j0002_job_charge"
down_revision: str | None = "j0001_jobs"
branch_labels = None
depends_on = None

TABLE = "sluice_jobs"


def upgrade() -> None:
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns(TABLE)}
    if "charge" not in have:
        op.add_column(TABLE, sa.Column("charge", sa.Text(), nullable=True))
    due = sa.text("charge IS NOT NULL")
    op.create_index("ix_sluice_jobs_charge", TABLE, ["id"], sqlite_where=due, postgresql_where=due)


def downgrade() -> None:
    op.drop_index("ix_sluice_jobs_charge", TABLE)
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_column("charge")
