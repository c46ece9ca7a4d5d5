"""The embedded work queue's `sluice_queue` (sluice.queue.sqlite).

Revision ID: q0001_queue
Revises: (none; branch `queue`)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0001_queue"
down_revision: str | None = None
branch_labels = ("queue",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sluice_queue",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=True, unique=True),
        sa.Column("group_id", sa.String(100), nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("worker", sa.String(32), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("enqueued_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_sluice_queue_pick", "sluice_queue", ["status", "priority", "enqueued_at"])
    op.create_index("ix_sluice_queue_group", "sluice_queue", ["group_id"])


def downgrade() -> None:
    op.drop_table("sluice_queue")
