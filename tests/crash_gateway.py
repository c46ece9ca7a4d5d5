"""`sluice` with a kill -9 armed at one step of async work (the crash tests' fault hook).

    python -m tests.crash_gateway POINT N serve --config ... --port ...

runs the CLI after wrapping the step named POINT so that its Nth call SIGKILLs this process
(its whole process group is not touched): `before` the step runs, or `after` it returned
true (the step's write committed). Steps:

- `batch.finish.before|after`: `BatchStore._finish`, an item's result (and its charge);
- `jobs.finish.before|after`: `JobStore.finish`, a job's result (and its charge);
- `charges.write.after`: `sluice.state.charges.write`, held charges copied to the ledger,
  not yet cleared.
"""

from __future__ import annotations

import functools
import itertools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from sluice.batch.store import BatchStore
from sluice.jobs.store import JobStore

POINT = sys.argv[1] if len(sys.argv) > 1 else ""


def _die() -> None:
    sys.stderr.write(f"crash_gateway: SIGKILL at {POINT}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _sync(fn: Callable[..., Any], when: str, nth: int) -> Callable[..., Any]:
    calls = itertools.count(1)  # next() is atomic: worker threads call it too

    @functools.wraps(fn)
    def wrapped(*args: Any, **kw: Any) -> Any:
        if when == "before" and next(calls) == nth:
            _die()
        done = fn(*args, **kw)
        if when == "after" and done and next(calls) == nth:
            _die()
        return done

    return wrapped


def _async(fn: Callable[..., Any], when: str, nth: int) -> Callable[..., Any]:
    calls = itertools.count(1)

    @functools.wraps(fn)
    async def wrapped(*args: Any, **kw: Any) -> Any:
        if when == "before" and next(calls) == nth:
            _die()
        done = await fn(*args, **kw)
        if when == "after" and done and next(calls) == nth:
            _die()
        return done

    return wrapped


def arm(point: str, nth: int) -> None:
    step, when = point.rsplit(".", 1)
    if step == "batch.finish":
        BatchStore._finish = _sync(BatchStore._finish, when, nth)  # type: ignore[method-assign]
    elif step == "jobs.finish":
        JobStore.finish = _async(JobStore.finish, when, nth)  # type: ignore[method-assign]
    elif step == "charges.write":
        from sluice.state import charges

        charges.write = _sync(charges.write, when, nth)
    else:
        raise SystemExit(f"unknown crash point {point!r}")


if __name__ == "__main__":
    arm(sys.argv[1], int(sys.argv[2]))
    from sluice.cli import main

    sys.argv = ["sluice", *sys.argv[3:]]
    sys.exit(main())
