"""A circuit breaker per deployment: outlier detection in the spirit of Envoy's.

closed    → calls flow; outcomes go into a rolling window.
open      → the deployment is ejected (skipped) for `open_s`; entered when the window's
            error rate reaches the threshold over enough calls, or after N consecutive
            gateway failures (5xx, timeouts, refused connections, malformed answers) — but
            only while `may_eject` agrees (the executor caps the share of a model's
            deployments ejected at once, as Envoy's `max_ejection_percent` does).
half-open → after `open_s`, up to `half_open_probes` calls go through; a success closes the
            breaker (fresh window), a failure opens it again.

Only the deployment's own failures count: a 429 rests it instead, and the caller's errors,
deadline or cancellation never count (see `PlanExecutor._record_failure`). When too much of
a plan is ejected the executor tries ejected deployments anyway (the panic threshold).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum
from typing import Literal

from sluice.reliability.window import SlidingCounts

_OK, _FAIL = 0, 1


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


BreakerStateName = Literal["closed", "half_open", "open"]
BREAKER_NAMES: dict[BreakerState, BreakerStateName] = {
    BreakerState.CLOSED: "closed",
    BreakerState.HALF_OPEN: "half_open",
    BreakerState.OPEN: "open",
}


class CircuitBreaker:
    def __init__(
        self,
        *,
        window_s: float,
        min_calls: int,
        error_rate: float,
        consecutive_failures: int,
        open_s: float,
        half_open_probes: int,
        clock: Callable[[], float] = time.monotonic,
        may_eject: Callable[[], bool] | None = None,
    ) -> None:
        self.may_eject = may_eject
        self._min_calls = min_calls
        self._error_rate = error_rate
        self._consecutive_limit = consecutive_failures
        self._open_s = open_s
        self._probes = half_open_probes
        self._clock = clock
        self._window = SlidingCounts(window_s, 2, clock)
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probes_out = 0
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._open_s:
            self._state = BreakerState.HALF_OPEN
            self._probes_out = 0
        return self._state

    def allow(self) -> bool:
        """May a call go to this deployment now? In half-open, this takes a probe slot."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and self._probes_out < self._probes:
            self._probes_out += 1
            return True
        return False

    def remaining_open_s(self) -> float:
        """Seconds until an open breaker lets a probe through (0 when not open)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(self._open_s - (self._clock() - self._opened_at), 0.0)

    def available(self) -> bool:
        """Like `allow` but takes nothing: for ordering and readiness."""
        state = self.state
        return state is BreakerState.CLOSED or (
            state is BreakerState.HALF_OPEN and self._probes_out < self._probes
        )

    def record_success(self) -> None:
        self._consecutive = 0
        if self._state is BreakerState.HALF_OPEN:
            self._state = BreakerState.CLOSED
            self._window.clear()
            return
        self._window.add(_OK)

    def record_failure(self) -> None:
        self._consecutive += 1
        if self._state is BreakerState.HALF_OPEN:
            self._open()
            return
        self._window.add(_FAIL)
        ok, failed = self._window.totals()
        calls = ok + failed
        tripped = calls >= self._min_calls and failed / calls >= self._error_rate
        if tripped or self._consecutive >= self._consecutive_limit:
            if self.may_eject is not None and not self.may_eject():
                self._consecutive = 0  # too many of its peers are out: keep it serving
                return
            self._open()

    def release_probe(self) -> None:
        """A probe that ended without an outcome (e.g. the client went away)."""
        if self._state is BreakerState.HALF_OPEN and self._probes_out > 0:
            self._probes_out -= 1

    def _open(self) -> None:
        if self._state is not BreakerState.OPEN:
            self.times_opened += 1
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._consecutive = 0
