"""The rest of a stream after its first event, and the request deadline around awaits.

Split out of the executor: the stream half owns the deployment's slot until the stream ends
and reports a failure after the first byte to the deployment's breaker — unless it was the
caller's own deadline that cut it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Protocol, TypeVar

from sluice.errors import UpstreamError, UpstreamTimeoutError
from sluice.reliability.slots import SlotPool
from sluice.reliability.state import DeploymentState
from sluice.types import EventStream, StreamEvent, next_batch

T = TypeVar("T")


class _Owner(Protocol):
    slots: SlotPool

    def record_failure(self, state: DeploymentState, err: UpstreamError) -> None: ...


async def bounded(awaitable: Awaitable[T], deadline: float | None, dep: str) -> T:
    """`awaitable`, or a 504 when the request's `x-sluice-timeout-ms` runs out first."""
    if deadline is None:
        return await awaitable
    try:
        async with asyncio.timeout_at(_loop_time(deadline)):
            return await awaitable
    except TimeoutError:
        raise UpstreamTimeoutError(
            f"upstream {dep} did not answer within the request's x-sluice-timeout-ms",
            deployment=dep,
        ) from None


def _loop_time(deadline: float) -> float:
    """monotonic deadline → the running loop's clock."""
    return asyncio.get_running_loop().time() + (deadline - time.monotonic())


class GuardedStream:
    """The rest of a stream after its first event. Gives the deployment's slot back exactly
    once when the stream ends, fails or is closed — even if it was never iterated."""

    __slots__ = ("_closed", "_deadline", "_events", "_first", "_owner", "_state")

    def __init__(
        self,
        first: StreamEvent,
        events: EventStream,
        owner: _Owner,
        state: DeploymentState,
        deadline: float | None,
    ) -> None:
        self._first: StreamEvent | None = first
        self._events = events
        self._owner = owner
        self._state = state
        self._deadline = deadline
        self._closed = False

    @property
    def deployment(self) -> str:
        return self._state.id

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._first is not None:
            event, self._first = self._first, None
            return event
        if self._closed:
            raise StopAsyncIteration
        try:
            return await bounded(anext(self._events), self._deadline, self._state.id)
        except StopAsyncIteration:
            await self.aclose()
            raise
        except UpstreamError as err:
            self._failed(err)
            await self.aclose()
            raise

    async def next_batch(self) -> list[StreamEvent]:
        """The first event alone (it is ready; the rest may not be), then one batch per read
        of the inner stream (`sluice.types.next_batch`), with the same failure handling."""
        if self._first is not None:
            event, self._first = self._first, None
            return [event]
        if self._closed:
            raise StopAsyncIteration
        try:
            return await bounded(next_batch(self._events), self._deadline, self._state.id)
        except StopAsyncIteration:
            await self.aclose()
            raise
        except UpstreamError as err:
            self._failed(err)
            await self.aclose()
            raise

    def _failed(self, err: UpstreamError) -> None:
        deadline = self._deadline
        caller = isinstance(err, UpstreamTimeoutError) and deadline is not None
        if not (caller and deadline is not None and time.monotonic() >= deadline - 0.005):
            self._owner.record_failure(self._state, err)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._first = None
        self._owner.slots.release(self._state)
        await self._events.aclose()
