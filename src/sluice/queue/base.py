"""The queue seam: what batches and async jobs ask of a durable work queue.

Two backends stand behind one small `Queue` protocol (`sluice.queue.build_queue` picks
one from `queue.url`):

- `SqlQueue` (embedded default): one table in a SQLite file under `state_dir`.
- `PgQueue` (several replicas): the `pgqueuer` library on PostgreSQL.

Semantics both keep (tests/integration/test_queue_*.py hold them to it):

- at least once: an item is deleted only after its handler returned (or raised); a worker
  that dies holding items stops renewing their lease and another worker takes them after
  `lock_timeout_s`. Handlers therefore write their results idempotently (keyed by the
  item's own identity, e.g. batch id + custom_id, or by job id with a "first write wins"
  update), which is what makes the *result* exactly once.
- priorities: INTERACTIVE before JOB before BATCH; FIFO within one priority.
- `dedupe_key`: while an item with that key waits or runs, enqueuing another with the same
  key returns the existing item's id instead of adding a twin.
- `cancel_group(group)`: items of the group not yet picked are removed (new items stop at
  once); items already running finish (their handlers see the group's cancelled state).
- a handler that raises: the item is dropped and logged (no blind retry; the handler owns
  its error policy, e.g. marking the job failed).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol


class Priority(IntEnum):
    """Higher runs first. Interactive traffic > async jobs > batch items."""

    BATCH = 0
    JOB = 10
    INTERACTIVE = 20


@dataclass(frozen=True, slots=True)
class Job:
    """One picked item, as a handler sees it."""

    id: str
    kind: str
    payload: dict[str, Any]
    priority: Priority
    group: str | None = None
    # SQLite: 1 on the first pick, +1 each time a dead worker's item is picked again.
    # PostgreSQL: pgqueuer counts explicit retries only, so a re-pick still says 1; keep
    # your own count where it matters (the jobs store does).
    attempts: int = 1
    enqueued_at: float = 0.0


Handler = Callable[[Job], Awaitable[None]]


@dataclass(slots=True)
class QueueStats:
    """Counters of one worker process (metrics)."""

    completed: int = 0
    failed: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Queue(Protocol):
    """A durable queue of small JSON payloads, run by `run` in one or more processes."""

    backend: str  # "sqlite" | "postgresql"
    stats: QueueStats

    async def start(self) -> None:
        """Create the tables (idempotent); call once before anything else."""

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        priority: Priority = Priority.JOB,
        dedupe_key: str | None = None,
        *,
        group: str | None = None,
        delay_s: float = 0.0,
    ) -> str:
        """Add an item; returns its id (the waiting twin's id when `dedupe_key` matches).
        `delay_s`: no worker picks it before that many seconds have passed (a retry's
        backoff waits in the queue, not in a worker slot)."""

    async def enqueue_many(
        self,
        kind: str,
        items: Sequence[tuple[dict[str, Any], str | None]],
        priority: Priority = Priority.BATCH,
        *,
        group: str | None = None,
    ) -> int:
        """Add many `(payload, dedupe_key)` items in one round trip (batch intake);
        items whose dedupe_key is already waiting or running are skipped. Returns how
        many were added."""

    async def cancel_group(self, group: str) -> int:
        """Remove the group's items not yet picked; returns how many were removed."""

    async def run(self, handlers: Mapping[str, Handler], concurrency: int = 8) -> None:
        """Take items of the handlers' kinds and run them, at most `concurrency` at once,
        until `stop()` (or the task is cancelled)."""

    async def drain(self, handlers: Mapping[str, Handler], concurrency: int = 8) -> None:
        """Like `run`, but return once no item of these kinds is waiting or running."""

    def stop(self) -> None:
        """Ask `run` to return after its running items finish."""

    async def depth_by_priority(self) -> dict[str, int]:
        """Items waiting or running, by priority name (`interactive`, `job`, `batch`)."""

    async def oldest_age_s(self) -> float:
        """Seconds the oldest waiting or running item has been in the queue (0: empty)."""

    async def close(self) -> None:
        """Release connections (after `run` returned)."""


def priority_of(value: int) -> Priority:
    """The nearest Priority at or below a stored number."""
    for p in sorted(Priority, reverse=True):
        if value >= p:
            return p
    return Priority.BATCH
