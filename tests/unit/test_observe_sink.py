"""RecordSink: non-blocking emit, bounded buffer, batching, flush on close, error counting."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import timeit
from collections.abc import Callable, Sequence

import pytest

from sluice.observe.records import CallRecord
from sluice.observe.sink import RecordSink


class FakeStore:
    """Collects batches; can be made to fail or to block (in the worker thread)."""

    def __init__(self, *, fail_first: int = 0) -> None:
        self.batches: list[list[CallRecord]] = []
        self.fail_first = fail_first
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        self.threads: set[int] = set()

    def write_batch(self, records: Sequence[CallRecord]) -> None:
        self.threads.add(threading.get_ident())
        self.entered.set()
        self.release.wait(5)
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectionRefusedError("database is down")  # transient: not split
        self.batches.append(list(records))

    @property
    def records(self) -> list[CallRecord]:
        return [r for batch in self.batches for r in batch]


def rec(i: int) -> CallRecord:
    return CallRecord(request_id=f"r{i}", ts=1000.0 + i, route="chat", latency_ms=float(i))


async def wait_until(predicate: Callable[[], bool]) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("timed out")


async def test_close_flushes_everything_in_batches() -> None:
    store = FakeStore()
    sink = RecordSink(store, batch_size=10, flush_interval_s=60)
    for i in range(5):
        sink.emit(rec(i))  # before start: buffered
    await sink.start()
    for i in range(5, 25):
        sink.emit(rec(i))
    await sink.close()
    assert [r.request_id for r in store.records] == [f"r{i}" for i in range(25)]
    assert all(len(b) <= 10 for b in store.batches)
    stats = sink.stats()
    assert (stats.emitted, stats.written, stats.dropped, stats.buffered) == (25, 25, 0, 0)


async def test_full_batch_is_written_without_waiting_for_the_timer() -> None:
    store = FakeStore()
    async with RecordSink(store, batch_size=10, flush_interval_s=60) as sink:
        for i in range(10):
            sink.emit(rec(i))
        await wait_until(lambda: len(store.records) == 10)
        assert sink.stats().written == 10


async def test_timer_flushes_a_partial_batch() -> None:
    store = FakeStore()
    async with RecordSink(store, batch_size=100, flush_interval_s=0.02) as sink:
        sink.emit(rec(1))
        sink.emit(rec(2))
        await wait_until(lambda: len(store.records) == 2)


async def test_writes_run_off_the_event_loop_thread() -> None:
    store = FakeStore()
    async with RecordSink(store, batch_size=1) as sink:
        sink.emit(rec(1))
    assert store.threads and threading.get_ident() not in store.threads


async def test_full_buffer_drops_and_counts_without_blocking() -> None:
    store = FakeStore()
    store.release.clear()  # the first write hangs until released
    drops: list[int] = []
    sink = RecordSink(
        store, max_buffer=100, batch_size=50, flush_interval_s=60, on_drop=lambda: drops.append(1)
    )
    await sink.start()
    for i in range(50):
        sink.emit(rec(i))
    await asyncio.to_thread(store.entered.wait, 2)  # the writer is stuck in the store
    started = time.perf_counter()
    for i in range(50, 1050):
        sink.emit(rec(i))
    elapsed = time.perf_counter() - started
    assert elapsed < 0.05  # 1000 emits, nothing waited for the stuck writer
    stats = sink.stats()
    assert (stats.buffered, stats.dropped, len(drops)) == (100, 900, 900)
    store.release.set()
    await sink.close()
    stats = sink.stats()
    assert (stats.emitted, stats.written, stats.dropped) == (1050, 150, 900)
    assert [r.request_id for r in store.records] == [f"r{i}" for i in range(150)]


async def test_write_errors_are_counted_and_the_sink_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FakeStore(fail_first=1)
    with caplog.at_level(logging.ERROR, logger="sluice.observe"):
        async with RecordSink(store, batch_size=5, flush_interval_s=60) as sink:
            for i in range(5):
                sink.emit(rec(i))
            await wait_until(lambda: sink.stats().write_errors == 1)
            for i in range(5, 10):
                sink.emit(rec(i))
    stats = sink.stats()
    assert (stats.write_errors, stats.failed_records, stats.written) == (1, 5, 5)
    assert stats.emitted == stats.written + stats.dropped + stats.failed_records
    assert [r.request_id for r in store.records] == [f"r{i}" for i in range(5, 10)]
    assert "could not write 5 call records" in caplog.text


async def test_records_are_logged_as_json_lines(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sluice.calls"):
        async with RecordSink(None, log_records=True) as sink:
            sink.emit(rec(1))
            sink.emit(rec(2))
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "sluice.calls"]
    assert [line["request_id"] for line in lines] == ["r1", "r2"]
    assert CallRecord.from_json(lines[0]) == rec(1)
    assert sink.stats().written == 2


async def test_no_log_lines_unless_enabled(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sluice.calls"):
        async with RecordSink(FakeStore()) as sink:
            sink.emit(rec(1))
    assert not [r for r in caplog.records if r.name == "sluice.calls"]


async def test_start_and_close_are_idempotent() -> None:
    store = FakeStore()
    sink = RecordSink(store)
    await sink.close()  # never started: nothing to do
    await sink.start()
    await sink.start()
    sink.emit(rec(1))
    await sink.close()
    await sink.close()
    assert len(store.records) == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        RecordSink(None, max_buffer=0)
    with pytest.raises(ValueError):
        RecordSink(None, flush_interval_s=0)


def test_emit_is_cheap() -> None:
    """emit() is on every call's path: a few hundred nanoseconds, never I/O."""
    sink = RecordSink(None, max_buffer=10_000_000)
    record = rec(1)
    n = 100_000
    per_call = min(timeit.repeat(lambda: sink.emit(record), number=n, repeat=3)) / n
    assert per_call < 20e-6, f"emit() took {per_call * 1e6:.2f} µs"
    full = RecordSink(None, max_buffer=1)
    full.emit(record)
    per_drop = min(timeit.repeat(lambda: full.emit(record), number=n, repeat=3)) / n
    assert per_drop < 20e-6, f"a dropping emit() took {per_drop * 1e6:.2f} µs"


class PickyStore(FakeStore):
    """Refuses any batch holding a record whose user is "bad" (as PostgreSQL refuses a
    value too long for its column); parks what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.parked: list[str] = []
        self.calls = 0

    def write_batch(self, records: Sequence[CallRecord]) -> None:
        self.calls += 1
        if any(r.user_id == "bad" for r in records):
            raise ValueError("value too long for type character varying(255)")
        self.batches.append(list(records))

    def park(self, record: CallRecord, exc: BaseException) -> bool:
        self.parked.append(f"{record.request_id}: {exc}")
        return True


async def test_one_bad_record_never_costs_the_batch() -> None:
    store = PickyStore()
    dead: list[int] = []
    async with RecordSink(store, batch_size=64, on_dead_letter=dead.append) as sink:
        for i in range(64):
            r = rec(i)
            if i in (5, 40):
                r.user_id = "bad"
            sink.emit(r)
    stats = sink.stats()
    assert sorted(r.request_id for r in store.records) == sorted(
        f"r{i}" for i in range(64) if i not in (5, 40)
    )
    assert [p.split(":")[0] for p in store.parked] == ["r5", "r40"]
    assert (stats.written, stats.dead_lettered, stats.failed_records) == (62, 2, 0)
    assert sum(dead) == 2
    assert store.calls <= 1 + 2 * 2 * 6  # bisection, not one write per row
