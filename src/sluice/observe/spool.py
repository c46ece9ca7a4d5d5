"""A local append-only spool of call records, so a `kill -9` loses none.

Why a spool and not a durable database write before each answer: a synchronous write to
PostgreSQL on every call adds a round trip (and the database's fsync) to every answer's
latency and makes the database's availability the gateway's; an append to a local file is
a few microseconds and survives the process being killed (the data is in the kernel's page
cache once `write()` returns). It does not survive the machine losing power — records are
telemetry, and the spend that matters for limits is settled in Redis/the ledger.

How: `RecordSink.emit` appends the record as one JSON line to the current *segment*
(`<dir>/<pid>-<random>-<n>.jsonl`) before queuing it, under an exclusive `flock` the process holds
for as long as the segment is pending. The writer rotates the segment when it takes a
batch; a segment whose records were all handled (written or dead-lettered) is deleted. A
segment whose process died — its lock is free — is an *orphan*: replayed into the store at
start and every `ORPHAN_SCAN_S` by whichever replica sharing the directory locks it first,
skipping records the store already has (same request id and timestamp), then deleted.
A segment with records that could not be written (the database was down, the buffer was
full) is unlocked but kept, so it is replayed later the same way.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("sluice.observe")

ORPHAN_SCAN_S = 30.0
_SUFFIX = ".jsonl"


@dataclass(slots=True, eq=False)
class Segment:
    path: Path
    fd: int  # open for appending, holding the exclusive lock
    count: int = 0  # records appended
    handled: int = 0  # records written or parked
    keep: bool = False  # some record could not be written: leave the file for a replay
    closed: bool = field(default=False)


class Spool:
    """Segments of one process in `directory` (created if missing)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory).resolve()  # not moved by a later chdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self._numbers = itertools.count()
        self._name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # one process may run two sinks
        self.pending: list[Segment] = []  # oldest first; the last one is being appended to
        self.current = self._open()

    def _open(self) -> Segment:
        path = self.dir / f"{self._name}-{next(self._numbers)}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        segment = Segment(path, fd)
        self.pending.append(segment)
        return segment

    def append(self, line: bytes) -> None:
        """One record (a JSON line ending in a newline); a few µs, no fsync."""
        os.write(self.current.fd, line)
        self.current.count += 1

    def append_unqueued(self, line: bytes) -> None:
        """A record this process will not write (its buffer is full): kept in the spool
        for a later replay, and counted as handled here."""
        self.append(line)
        self.current.handled += 1
        self.current.keep = True

    def rotate(self) -> None:
        """Start a new segment if the current one has records."""
        if self.current.count:
            self.current.closed = True
            self.current = self._open()

    def handled(self, n: int, *, failed: bool = False) -> None:
        """The oldest `n` pending records were written or parked (`failed`: were lost
        here, so their segments must be replayed)."""
        for segment in self.pending:
            if n <= 0:
                break
            take = min(n, segment.count - segment.handled)
            segment.handled += take
            segment.keep |= failed and take > 0
            n -= take
        while self.pending and self.pending[0].closed:
            head = self.pending[0]
            if head.handled < head.count:
                break
            self.pending.pop(0)
            self._finish(head)

    def _finish(self, segment: Segment) -> None:
        if not segment.keep:
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()
        os.close(segment.fd)  # releases the lock: a kept segment becomes an orphan

    def close(self) -> None:
        """Release every segment: handled ones are deleted, others left for a replay."""
        for segment in self.pending:
            segment.closed = True
            if segment.handled < segment.count:
                segment.keep = True
            self._finish(segment)
        self.pending.clear()


@contextlib.contextmanager
def claim_orphan(path: Path) -> Iterator[bytes | None]:
    """The segment's content if no live process holds it (then locked by us until the
    block ends, and deleted if the block succeeds); None if it is held or gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        if not path.exists():  # replayed and deleted by another replica meanwhile
            yield None
            return
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read()
        yield data
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


def orphan_paths(directory: str | Path) -> list[Path]:
    """Segment files in the directory, oldest first (the live ones are skipped when
    claimed)."""
    base = Path(directory)
    if not base.is_dir():
        return []
    found: list[tuple[float, Path]] = []
    for path in base.glob("*" + _SUFFIX):
        with contextlib.suppress(FileNotFoundError):
            found.append((path.stat().st_mtime, path))
    return [path for _, path in sorted(found)]
