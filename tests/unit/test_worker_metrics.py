"""The merged `/metrics` view of `sluice serve --workers N` (sluice.observe.worker_metrics)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sluice.observe.worker_metrics import ENV_DIR, WorkerMetrics


def _exposition(calls: int, in_flight: float, latencies: list[float]) -> bytes:
    r = CollectorRegistry()
    c = Counter("sluice_requests", "calls", ["route", "status"], registry=r)
    c.labels("chat", "200").inc(calls)
    c.labels("chat", "429").inc(1)
    Gauge("sluice_in_flight", "in flight", registry=r).set(in_flight)
    h = Histogram("sluice_latency_seconds", "latency", buckets=(0.1, 1.0), registry=r)
    for s in latencies:
        h.observe(s)
    return generate_latest(r)


def _samples(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(body.decode())
        for s in fam.samples
    }


def test_counters_and_histograms_sum_gauges_keep_their_worker(tmp_path: Path) -> None:
    a, b = WorkerMetrics(tmp_path, 0), WorkerMetrics(tmp_path, 1)
    b.publish(_exposition(5, 2, [0.05, 2.0]))
    merged = _samples(a.merged(_exposition(3, 1, [0.5])))
    assert merged[("sluice_requests_total", (("route", "chat"), ("status", "200")))] == 8
    assert merged[("sluice_requests_total", (("route", "chat"), ("status", "429")))] == 2
    assert merged[("sluice_latency_seconds_count", ())] == 3
    assert merged[("sluice_latency_seconds_bucket", (("le", "0.1"),))] == 1
    assert merged[("sluice_latency_seconds_bucket", (("le", "1.0"),))] == 2
    assert merged[("sluice_latency_seconds_bucket", (("le", "+Inf"),))] == 3
    assert merged[("sluice_in_flight", (("worker", "0"),))] == 1
    assert merged[("sluice_in_flight", (("worker", "1"),))] == 2
    assert not any(name.endswith("_created") for name, _ in merged)
    # The scraped worker published its own numbers for the others' scrapes.
    again = _samples(b.merged(_exposition(5, 2, [0.05, 2.0])))
    assert again[("sluice_requests_total", (("route", "chat"), ("status", "200")))] == 8


def test_a_dead_workers_stale_file_is_left_out(tmp_path: Path) -> None:
    a, b = WorkerMetrics(tmp_path, 0), WorkerMetrics(tmp_path, 1)
    b.publish(_exposition(5, 2, []))
    old = time.time() - a.stale_s - 1
    os.utime(tmp_path / "1.prom", (old, old))
    merged = _samples(a.merged(_exposition(3, 1, [])))
    assert merged[("sluice_requests_total", (("route", "chat"), ("status", "200")))] == 3
    assert ("sluice_in_flight", (("worker", "1"),)) not in merged


def test_files_that_are_not_a_workers_are_ignored(tmp_path: Path) -> None:
    a = WorkerMetrics(tmp_path, 0)
    (tmp_path / "notes.prom").write_text("garbage")
    (tmp_path / ".1.123.tmp").write_text("half a file")
    merged = _samples(a.merged(_exposition(3, 1, [])))
    assert merged[("sluice_requests_total", (("route", "chat"), ("status", "200")))] == 3


def test_a_state_dir_that_cannot_be_written_falls_back_to_a_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sluice serve --workers N` must start even when its state dir is read-only."""
    from sluice import workers

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    seen: list[str] = []

    class Fake:
        def __init__(self, *_: object) -> None:
            pass

        def run(self, count: int) -> int:
            seen.append(os.environ[ENV_DIR])
            return 0

    monkeypatch.setattr(workers, "_Supervisor", Fake)
    assert workers.run_workers(2, lambda: None, 1.0, blocker / "worker-metrics") == 0
    assert seen and not seen[0].startswith(str(blocker))
    assert not Path(seen[0]).exists()  # removed at exit
    assert ENV_DIR not in os.environ
