"""`RecordSink`: takes call records on the hot path and writes them in the background.

`emit(record)` is a plain synchronous call that never blocks or awaits: it appends to a
bounded buffer, and when the buffer is full it drops the record and counts it. A writer
task (`await start()` … `await close()`) takes batches of up to `batch_size` records — as
soon as a batch is full, or every `flush_interval_s` — and hands each batch to a worker
thread (`asyncio.to_thread`) that writes it to the store in one transaction and, when
`log_records` is on, logs each record as one JSON line on the `sluice.calls` logger.
`close()` writes everything still buffered before it returns.

Call `emit` from the event loop's thread only (the buffer and the wake-up event belong to
that loop). Records emitted before `start()` wait in the buffer.

A batch the database refuses for its content is split down to the refused records, which
are parked in the store's dead-letter table (`RecordStore.park`) and counted: one bad
record never costs the others (`sluice.observe.rows.write_splitting`).

Accounting: emitted = written + dead_lettered + dropped + failed_records + buffered
(+ those in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Protocol

import orjson

from sluice.observe.records import FIELD_NAMES, CallRecord
from sluice.observe.rows import write_splitting
from sluice.observe.spool import ORPHAN_SCAN_S, Spool, claim_orphan, orphan_paths

log = logging.getLogger("sluice.observe")
calls_log = logging.getLogger("sluice.calls")


class RecordWriter(Protocol):
    """Where batches go; `RecordStore` is one. Called from a worker thread."""

    def write_batch(self, records: Sequence[CallRecord]) -> None: ...


_values = attrgetter(*FIELD_NAMES)


def _no_park(record: CallRecord, exc: BaseException) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class SinkStats:
    emitted: int  # emit() calls
    written: int  # records the store accepted
    dropped: int  # records refused because the buffer was full
    write_errors: int  # failed batch writes
    failed_records: int  # records lost in failed batch writes
    buffered: int  # waiting to be written
    dead_lettered: int = 0  # records the table refused, parked in the dead-letter table


class RecordSink:
    def __init__(
        self,
        store: RecordWriter | None,
        *,
        max_buffer: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 0.5,
        log_records: bool = False,
        on_drop: Callable[[], None] | None = None,
        on_dead_letter: Callable[[int], None] | None = None,
        spool: Spool | None = None,
    ) -> None:
        if max_buffer < 1 or batch_size < 1 or flush_interval_s <= 0:
            raise ValueError("max_buffer and batch_size must be >= 1, flush_interval_s > 0")
        self._store = store
        self._max = max_buffer
        self._batch_size = batch_size
        self._interval = flush_interval_s
        self._log_records = log_records
        self._on_drop = on_drop
        self._on_dead_letter = on_dead_letter
        self._spool = spool
        self._next_scan = 0.0
        self.replayed = 0  # records written from orphaned spool segments
        self._dead = 0
        self._buf: deque[CallRecord] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._emitted = self._written = self._dropped = 0
        self._write_errors = self._failed = 0

    # --- hot path ------------------------------------------------------------------------

    def emit(self, record: CallRecord) -> None:
        """Queue a record for writing; drop (and count) it if the buffer is full."""
        self._emitted += 1
        buf = self._buf
        full = len(buf) >= self._max
        if self._spool is not None:
            self._spool_record(record, queued=not full)
        if full:
            self._dropped += 1
            if self._on_drop is not None:
                self._on_drop()
            return
        buf.append(record)
        if len(buf) == self._batch_size and self._wake is not None:
            self._wake.set()

    def _spool_record(self, record: CallRecord, *, queued: bool) -> None:
        spool = self._spool
        assert spool is not None
        # The values as an array in FIELD_NAMES order: 3x cheaper than a dict (measured);
        # Decimals become strings, which `CallRecord.from_json` reads back.
        line = orjson.dumps(_values(record), default=str, option=orjson.OPT_APPEND_NEWLINE)
        try:
            if queued:
                spool.append(line)
            else:
                spool.append_unqueued(line)
        except OSError as exc:  # disk full, directory gone: records still go to the store
            log.error("record spool disabled: %s", exc)
            self._spool = None

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._closing = False
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sluice-record-sink")

    async def close(self) -> None:
        """Stop the writer after it has written everything buffered."""
        task = self._task
        if task is None:
            return
        self._closing = True
        assert self._wake is not None
        self._wake.set()
        try:
            await task
        finally:
            self._task = None
            self._wake = None
            if self._spool is not None:
                self._spool.close()

    async def __aenter__(self) -> RecordSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def stats(self) -> SinkStats:
        return SinkStats(
            emitted=self._emitted,
            written=self._written,
            dropped=self._dropped,
            write_errors=self._write_errors,
            failed_records=self._failed,
            buffered=len(self._buf),
            dead_lettered=self._dead,
        )

    # --- writer --------------------------------------------------------------------------

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            if len(self._buf) < self._batch_size and not self._closing:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await wake.wait()
            wake.clear()
            if self._spool is not None:
                try:
                    self._spool.rotate()
                except OSError as exc:  # the writer goes on without the spool
                    log.error("record spool disabled: %s", exc)
                    self._spool = None
                await self._replay_orphans()
            # On a tick or at close, write everything; otherwise only full batches.
            while self._buf:
                batch = self._take()
                failed = await asyncio.to_thread(self._write, batch)
                if self._spool is not None:
                    self._spool.handled(len(batch), failed=failed)
                if len(self._buf) < self._batch_size and not self._closing:
                    break
            if self._closing and not self._buf:
                return

    def _take(self) -> list[CallRecord]:
        buf = self._buf
        return [buf.popleft() for _ in range(min(len(buf), self._batch_size))]

    async def _replay_orphans(self) -> None:
        """Every ORPHAN_SCAN_S (and at start): segments of dead processes into the store."""
        now = asyncio.get_running_loop().time()
        if self._store is None or self._spool is None or now < self._next_scan:
            return
        self._next_scan = now + ORPHAN_SCAN_S
        try:
            self.replayed += await asyncio.to_thread(replay_orphans, self._spool.dir, self._store)
        except Exception as exc:  # the store is down: the segments stay for the next scan
            log.warning("record spool replay deferred: %s", type(exc).__name__)

    def _write(self, batch: list[CallRecord]) -> bool:
        """Runs in a worker thread; True when some record was lost here. The log lines do
        not depend on the store: when the database is down they are the only trace left."""
        if self._log_records and calls_log.isEnabledFor(logging.INFO):
            for record in batch:
                calls_log.info(orjson.dumps(record.to_json()).decode())
        if self._store is None:
            self._written += len(batch)
            return False
        park = getattr(self._store, "park", _no_park)
        try:
            written, parked, lost = write_splitting(batch, self._store.write_batch, park)
        except Exception as exc:  # the store is unreachable: counted, logged
            self._write_errors += 1
            self._failed += len(batch)
            log.error("could not write %d call records: %s", len(batch), type(exc).__name__)
            return True
        self._written += written
        if parked or lost:
            log.warning(
                "call records: %d refused by the table, %d parked, %d lost",
                parked + lost,
                parked,
                lost,
            )
            self._dead += parked
            self._failed += lost
            if self._on_dead_letter is not None and parked:
                self._on_dead_letter(parked)
        return lost > 0


def replay_orphans(directory: Path, store: RecordWriter) -> int:
    """Write the records of orphaned spool segments the store does not have yet; how many
    were written. Blocking (a worker thread). Raises when the store is unreachable."""
    missing = getattr(store, "missing", None)
    park = getattr(store, "park", _no_park)
    total = 0
    for path in orphan_paths(directory):
        with claim_orphan(path) as data:
            if not data:
                continue
            records = []
            for line in data.splitlines():
                try:  # a process killed mid-write leaves a partial last line
                    values = orjson.loads(line)
                    if len(values) != len(FIELD_NAMES):
                        continue  # written by a version with other fields
                    records.append(
                        CallRecord.from_json(dict(zip(FIELD_NAMES, values, strict=True)))
                    )
                except (orjson.JSONDecodeError, TypeError, ValueError, ArithmeticError):
                    continue
            todo = missing(records) if missing is not None and records else records
            if todo:
                written, _, _ = write_splitting(todo, store.write_batch, park)
                total += written
                log.info("replayed %d call records from %s", written, path.name)
    return total
