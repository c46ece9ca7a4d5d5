"""Prometheus series of the batch runner, on the gateway's registry.

- `sluice_batch_items_total{outcome}`: items finished (succeeded, errored); `rate()` of
  it is items per second.
- `sluice_batch_queue_depth{state}`: items waiting (`pending`) and in flight (`running`)
  in active batches, at the lowest priority (interactive calls never wait in it).
- `sluice_batch_oldest_pending_age_seconds`: age of the oldest active batch's work.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge

_OUTCOMES = frozenset({"succeeded", "errored"})


class BatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.items = Counter(
            "sluice_batch_items", "Batch items finished.", ["outcome"], registry=registry
        )
        self.depth = Gauge(
            "sluice_batch_queue_depth",
            "Batch items waiting or running.",
            ["state"],
            registry=registry,
        )
        self.oldest = Gauge(
            "sluice_batch_oldest_pending_age_seconds",
            "Age of the oldest batch with work left.",
            registry=registry,
        )

    def item_done(self, state: str) -> None:
        self.items.labels(state if state in _OUTCOMES else "other").inc()

    def queue(self, pending: int, running: int, oldest: float | None) -> None:
        self.depth.labels("pending").set(pending)
        self.depth.labels("running").set(running)
        self.oldest.set(0.0 if oldest is None else max(0.0, time.time() - oldest))
