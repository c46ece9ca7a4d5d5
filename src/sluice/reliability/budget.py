"""A global retry budget: retries may be at most a share of requests over a sliding window.

Without it, an upstream outage turns every request into 1 + max_retries calls exactly when
the upstream can least take them (a retry storm). A small floor keeps retries available at
low traffic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sluice.reliability.window import SlidingCounts

_REQUESTS, _RETRIES = 0, 1


class RetryBudget:
    def __init__(
        self,
        ratio: float,
        window_s: float,
        min_retries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ratio = ratio
        self._min = min_retries
        self._counts = SlidingCounts(window_s, 2, clock)

    def record_request(self) -> None:
        self._counts.add(_REQUESTS)

    def try_spend(self) -> bool:
        """True (and counted) when one more retry fits the budget."""
        requests, retries = self._counts.totals()
        if retries >= max(self._min, self._ratio * requests):
            return False
        self._counts.add(_RETRIES)
        return True

    def snapshot(self) -> dict[str, int]:
        requests, retries = self._counts.totals()
        return {"requests": requests, "retries": retries}
