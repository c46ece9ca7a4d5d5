"""One `/metrics` view over the workers of `sluice serve --workers N`.

Why not prometheus_client's multiprocess mode: most per-call series are Sluice's own
collector (`call_metrics.CallTotals`, plain numbers turned into families at scrape time),
which multiprocess mode cannot see (it only aggregates the library's mmap-backed values), and
switching every counter to mmap files would put a file write on each call's hot path.

Instead each worker publishes its rendered exposition to `<dir>/<slot>.prom` once a second
(and at each scrape it answers), and the worker that takes a scrape answers with all of them
merged: counters and histograms summed over workers (the totals, as one process would report
them), gauges kept apart with a `worker="<slot>"` label (in-flight calls, breaker states and
ratios are per process; `sum(sluice_in_flight)` is the gateway's). A worker's file older than
`stale_s` (a worker that died and was not replaced) is left out; a restarted worker starts its
counters from zero, which Prometheus' `rate()` treats as a counter reset. So a total can be at
most one publish interval behind for the other workers; the scraped worker's own numbers are
live.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

ENV_DIR = "SLUICE_WORKER_METRICS_DIR"  # set by the supervisor (`sluice.workers`)
ENV_SLOT = "SLUICE_WORKER_SLOT"
_SUMMED = frozenset({"counter", "histogram", "summary", "unknown", "untyped"})


class WorkerMetrics:
    """This worker's side: publish its own exposition, merge everyone's for a scrape."""

    def __init__(self, directory: Path, slot: int, *, interval_s: float = 1.0) -> None:
        self.directory = directory
        self.slot = slot
        self.interval_s = interval_s
        self.stale_s = max(10.0, 5 * interval_s)
        directory.mkdir(parents=True, exist_ok=True)

    def publish(self, body: bytes) -> None:
        """Atomically replace this worker's file (a reader never sees half of it)."""
        tmp = self.directory / f".{self.slot}.{os.getpid()}.tmp"
        tmp.write_bytes(body)
        os.replace(tmp, self.directory / f"{self.slot}.prom")

    def others(self) -> dict[int, str]:
        now = time.time()
        out: dict[int, str] = {}
        for path in self.directory.glob("*.prom"):
            try:
                slot = int(path.stem)
                if slot == self.slot or now - path.stat().st_mtime > self.stale_s:
                    continue
                out[slot] = path.read_text()
            except (ValueError, OSError):  # not ours, or replaced meanwhile
                continue
        return out

    def merged(self, own: bytes) -> bytes:
        """`own` (this worker's fresh exposition) merged with the other workers' files."""
        with contextlib.suppress(OSError):  # the others' view of it stays a moment older
            self.publish(own)
        texts = {self.slot: own.decode(), **self.others()}
        return generate_latest(_Merged(texts))


class _Merged(Collector):
    def __init__(self, texts: dict[int, str]) -> None:
        self.texts = texts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        sums: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for slot in sorted(self.texts):
            for fam in text_string_to_metric_families(self.texts[slot]):
                merged = families.get(fam.name)
                if merged is None:
                    merged = families[fam.name] = Metric(fam.name, fam.documentation, fam.type)
                    sums[fam.name] = {}
                for s in fam.samples:
                    if s.name.endswith("_created"):  # a per-process timestamp: not summable
                        continue
                    if fam.type in _SUMMED:
                        key = (s.name, tuple(sorted(s.labels.items())))
                        acc = sums[fam.name]
                        acc[key] = acc.get(key, 0.0) + s.value
                    else:
                        merged.add_sample(s.name, {**s.labels, "worker": str(slot)}, s.value)
        for name, merged in families.items():
            for (sample, labels), value in sums[name].items():
                merged.add_sample(sample, dict(labels), value)
            yield merged


def from_env() -> WorkerMetrics | None:
    """The view when this process is one of several workers (the supervisor set both)."""
    directory, slot = os.environ.get(ENV_DIR), os.environ.get(ENV_SLOT)
    if not directory or slot is None:
        return None
    return WorkerMetrics(Path(directory), int(slot))
