"""The durable work queue behind batches and async jobs (embedded SQLite; PostgreSQL library).

    from sluice.queue import Priority, build_queue
    queue = build_queue(config.queue)          # QueueSettings (`queue:` in the config)
    await queue.start()
    item_id = await queue.enqueue("job.run", {"job": "j_1"}, Priority.JOB, dedupe_key="j_1")
    await queue.run({"job.run": handler}, concurrency=8)   # in a worker task

`sluice.queue.base` states the semantics (at least once, leases, priorities, dedupe,
cancellation); docs/design/queue.md why pgqueuer backs the shared mode.
"""

from __future__ import annotations

from sluice.queue.base import Handler, Job, Priority, Queue, QueueStats
from sluice.queue.config import QueueSettings

__all__ = ["Handler", "Job", "Priority", "Queue", "QueueSettings", "QueueStats", "build_queue"]


def build_queue(settings: QueueSettings) -> Queue:
    """The backend `settings.url` names (SQLite: embedded; postgresql://: pgqueuer).
    A relative SQLite path is taken inside `state_dir` by the config loader."""
    url = settings.url
    if url.startswith(("postgresql", "postgres://")):
        from sluice.queue.pg import PgQueue  # imported only when used (psycopg LISTEN etc.)

        return PgQueue(
            url,
            name=settings.name,
            lock_timeout_s=settings.lock_timeout_s,
            poll_interval_s=settings.poll_interval_s,
        )
    if url.startswith("sqlite"):
        from sluice.queue.sqlite import SqlQueue

        return SqlQueue(
            url, lock_timeout_s=settings.lock_timeout_s, poll_interval_s=settings.poll_interval_s
        )
    raise ValueError(f"queue.url must be sqlite:/// or postgresql://, not {url.split(':')[0]}")
