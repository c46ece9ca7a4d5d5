"""`Supervisor`: one owner for the gateway's long-lived parts and their background work.

The gateway registers, in dependency order, every part that holds a background task or a
pooled resource (key store migrations and key-change listener, record sink, ledger writer,
cache mirror, semantic-store listener, alert loop, provider pools, tracing exporter):

    start()   starts them in order; if one fails, the ones already started are stopped
              (reverse order) and the error is raised, so a half-started gateway never serves
    health()  each part's state: "registered", "running", "stopped", "failed: <error>",
              "stop failed: <error>"; and each task started with `spawn`, "running" or how
              it ended
    stop()    stops them in reverse order, each within `stop_timeout_s`; one that fails or
              hangs is logged and reported in `health()`, and the others still stop

`spawn(name, coro)` starts a task the supervisor owns: it is cancelled and awaited by
`stop()` before any part is stopped, and a task that dies with an error is logged at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("sluice.supervisor")


@dataclass(slots=True)
class _Part:
    name: str
    start: Callable[[], Awaitable[Any]] | None
    stop: Callable[[], Awaitable[Any]] | None
    state: str = "registered"


class Supervisor:
    def __init__(self, stop_timeout_s: float = 30.0) -> None:
        self.stop_timeout_s = stop_timeout_s
        self._parts: list[_Part] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False

    def add(
        self,
        name: str,
        start: Callable[[], Awaitable[Any]] | None = None,
        stop: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        """Register a part (before `start`); parts start in the order they are added."""
        if self._started:
            raise RuntimeError(f"{name}: parts are registered before the supervisor starts")
        if any(p.name == name for p in self._parts):
            raise ValueError(f"a part named {name!r} is registered already")
        self._parts.append(_Part(name, start, stop))

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` as a task owned here (cancelled by `stop`)."""
        if name in self._tasks and not self._tasks[name].done():
            coro.close()
            raise ValueError(f"a task named {name!r} is running already")
        task = asyncio.get_running_loop().create_task(coro, name=f"sluice-{name}")
        task.add_done_callback(_log_failure)
        self._tasks[name] = task
        return task

    async def start(self) -> None:
        self._started = True
        for index, part in enumerate(self._parts):
            try:
                if part.start is not None:
                    await part.start()
            except BaseException as exc:
                part.state = f"failed: {type(exc).__name__}: {exc}"
                log.error("%s failed to start: %s", part.name, exc)
                await self._stop_parts(self._parts[:index])
                raise
            part.state = "running"

    async def stop(self) -> None:
        """Stop everything: owned tasks first, then the parts in reverse order."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=self.stop_timeout_s)
        await self._stop_parts(self._parts)

    async def _stop_parts(self, parts: list[_Part]) -> None:
        for part in reversed(parts):
            if part.state.startswith(("stopped", "stop failed")):
                continue
            try:
                if part.stop is not None:
                    await asyncio.wait_for(part.stop(), self.stop_timeout_s)
            except Exception as exc:  # fail open by design: the other parts must still stop
                part.state = f"stop failed: {type(exc).__name__}: {exc}"
                log.error("%s did not stop cleanly: %r", part.name, exc)
                continue
            part.state = "stopped"

    def health(self) -> dict[str, str]:
        states = {part.name: part.state for part in self._parts}
        for name, task in self._tasks.items():
            states[f"task:{name}"] = _task_state(task)
        return states


def _task_state(task: asyncio.Task[None]) -> str:
    if not task.done():
        return "running"
    if task.cancelled():
        return "cancelled"
    exc = task.exception()
    return f"failed: {type(exc).__name__}: {exc}" if exc is not None else "finished"


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("background task %s died", task.get_name(), exc_info=exc)
