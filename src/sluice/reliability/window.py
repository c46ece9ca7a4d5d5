"""A sliding window of counters in one-second buckets (no per-event allocation)."""

from __future__ import annotations

import time
from collections.abc import Callable


class SlidingCounts:
    """Counts of `n` named series over the last `window_s` seconds."""

    __slots__ = ("_buckets", "_clock", "_epochs", "_series", "_window")

    def __init__(
        self, window_s: float, series: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = max(1, int(window_s))
        self._series = series
        self._clock = clock
        self._buckets = [[0] * series for _ in range(self._window)]
        self._epochs = [-1] * self._window

    def _bucket(self, now: float) -> list[int]:
        second = int(now)
        slot = second % self._window
        if self._epochs[slot] != second:
            self._epochs[slot] = second
            bucket = self._buckets[slot]
            for i in range(self._series):
                bucket[i] = 0
        return self._buckets[slot]

    def add(self, series: int, amount: int = 1) -> None:
        self._bucket(self._clock())[series] += amount

    def totals(self) -> list[int]:
        now = int(self._clock())
        oldest = now - self._window + 1
        out = [0] * self._series
        for epoch, bucket in zip(self._epochs, self._buckets, strict=True):
            if epoch >= oldest:
                for i in range(self._series):
                    out[i] += bucket[i]
        return out

    def clear(self) -> None:
        self._epochs = [-1] * self._window
