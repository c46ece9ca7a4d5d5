"""The queue's settings (`queue:` in the config): a leaf schema module, so the root config
(`sluice.config`) includes it without importing the queue backends.

`url` picks the backend: a SQLite URL (the embedded default, a file under `state_dir`,
one process, nothing running) or `postgresql://...` (shared by every replica, on the
`pgqueuer` library; see docs/design/queue.md for why that library).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class QueueSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # sqlite:///sluice-queue.db (relative: inside state_dir) or postgresql://host/db
    url: str = "sqlite:///sluice-queue.db"
    # A picked item whose worker has not renewed its lease for this long is given to the
    # next worker (the worker died): the lock/visibility timeout. Renewed every third of it.
    lock_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # SQLite backend: the longest pause between looks at an empty queue (enqueues in the
    # same process wake the worker at once).
    poll_interval_s: float = Field(default=0.5, gt=0, le=60)
    # PostgreSQL backend: prefix of pgqueuer's tables and NOTIFY channel, so several
    # Sluice deployments (or tests) can share one database without seeing each other.
    name: str = Field(default="sluice_", pattern=r"^[a-z_][a-z0-9_]{0,30}$")
    # Items a worker runs at once (each kind's handler decides what an item costs).
    concurrency: int = Field(default=8, ge=1, le=1024)
