"""Per-deployment concurrency caps, and a bounded priority queue for when every candidate
deployment is full (backpressure: wait a little, then a clean 429, never a pile-up)."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from dataclasses import dataclass, field

from sluice.errors import RateLimitError
from sluice.reliability.state import DeploymentState


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    candidates: frozenset[str] = field(compare=False)
    future: asyncio.Future[DeploymentState] = field(compare=False)


class SlotPool:
    """`acquire`/`release` in-flight slots; waiters are served best priority first (lower
    number first), then in arrival order."""

    def __init__(self, max_waiting: int, max_wait_s: float) -> None:
        self._max_waiting = max_waiting
        self._max_wait_s = max_wait_s
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for w in self._waiters if not w.future.done())

    def try_acquire(self, state: DeploymentState) -> bool:
        if not state.has_slot():
            return False
        state.in_flight += 1
        return True

    def release(self, state: DeploymentState) -> None:
        state.in_flight -= 1
        if not self._waiters:
            return
        # Hand the freed slot straight to the best waiter that can use this deployment.
        skipped: list[_Waiter] = []
        while self._waiters:
            waiter = heapq.heappop(self._waiters)
            if waiter.future.done():
                continue
            if state.id in waiter.candidates and state.has_slot():
                state.in_flight += 1
                waiter.future.set_result(state)
                break
            skipped.append(waiter)
        for waiter in skipped:
            heapq.heappush(self._waiters, waiter)

    async def wait_for_any(
        self, candidates: list[DeploymentState], priority: int, max_wait_s: float | None = None
    ) -> DeploymentState:
        """A slot on one of `candidates`, waiting in line if all are full."""
        for state in candidates:
            if self.try_acquire(state):
                return state
        wait_s = self._max_wait_s if max_wait_s is None else min(max_wait_s, self._max_wait_s)
        retry_after = {"retry-after": str(max(1, math.ceil(self._max_wait_s)))}
        if self.waiting >= self._max_waiting or wait_s <= 0:
            raise RateLimitError(
                "every deployment for this model is at its concurrency limit and the wait "
                "queue is full",
                code="queue_full",
                headers=retry_after,
            )
        future: asyncio.Future[DeploymentState] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(priority, next(self._seq), frozenset(s.id for s in candidates), future)
        heapq.heappush(self._waiters, waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(future), wait_s)
        except TimeoutError:
            if future.done() and not future.cancelled():
                self.release(future.result())  # granted just as we gave up: give it back
            future.cancel()
            raise RateLimitError(
                f"every deployment for this model stayed at its concurrency limit for {wait_s:g}s",
                code="queue_timeout",
                headers=retry_after,
            ) from None
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(future.result())
            future.cancel()
            raise
