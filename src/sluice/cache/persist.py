"""Keep the memory backend's exact-cache entries in a SQLite file across restarts.

`cache.persist_path` turns it on (memory backend only). At start the file is read (in a
thread) and every unexpired entry is put back, with its tags, so purge-by-route/tenant keeps
working. While serving, the backend reports every tagged store and removal (eviction,
expiry seen, purge) to `SqliteMirror.changed`, which only records the latest change per key;
a background task writes the batch to the file once per `flush_interval_s`, in a thread, off
the request path. A crash loses at most the last interval's changes, which is fine for a
cache. Idempotency records are untagged and never written.

The file's table (`entries`, defined in `sluice.state.tables`) is made by the `cache` branch
of the one Alembic environment when the mirror starts; reads and writes are plain sqlite3
statements (one short transaction per flush, no engine needed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from sluice.cache.backends import MemoryBackend
from sluice.state import migrations

log = logging.getLogger("sluice.cache")

# (value, wall-clock expiry, tags) to upsert, or None to delete.
_Change = tuple[bytes, float, tuple[str, ...]] | None


class SqliteMirror:
    def __init__(
        self,
        path: str | Path,
        backend: MemoryBackend,
        *,
        flush_interval_s: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
        backend_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.backend = backend
        self.flush_interval_s = flush_interval_s
        self._wall = wall_clock
        self._mono = backend_clock
        self._pending: dict[str, _Change] = {}
        self._task: asyncio.Task[None] | None = None
        self.written = 0  # rows upserted or deleted so far

    def changed(self, key: str, value: bytes | None, expires: float, tags: tuple[str, ...]) -> None:
        """The backend's `ChangeListener`: remember the latest change of `key`."""
        if value is None:
            self._pending[key] = None
        else:
            self._pending[key] = (value, self._wall() + (expires - self._mono()), tags)

    async def start(self) -> int:
        """Load the file into the backend, then mirror changes; how many entries loaded."""
        rows = await asyncio.to_thread(self._read)
        now_wall, now_mono = self._wall(), self._mono()
        for key, value, expires_at, tags in rows:
            self.backend.restore(key, value, now_mono + (expires_at - now_wall), tags)
        self.backend.listener = self.changed
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="sluice-cache-mirror")
        log.info("cache: %d entries loaded from %s", len(rows), self.path)
        return len(rows)

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        await asyncio.to_thread(self._write, batch)

    async def close(self) -> None:
        self.backend.listener = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except (sqlite3.Error, OSError) as exc:
                log.warning("cache: writing %s failed: %r", self.path, exc)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path)

    def _read(self) -> list[tuple[str, bytes, float, list[str]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        migrations.upgrade(f"sqlite:///{self.path.absolute()}", "cache")
        with contextlib.closing(self._connect()) as db:
            db.execute("DELETE FROM entries WHERE expires_at <= ?", (self._wall(),))
            db.commit()
            rows = db.execute(
                "SELECT key, value, expires_at, tags FROM entries ORDER BY expires_at"
            ).fetchall()
        return [(k, bytes(v), float(e), list(orjson.loads(t))) for k, v, e, t in rows]

    def _write(self, batch: dict[str, _Change]) -> None:
        upserts = [
            (key, change[0], change[1], orjson.dumps(change[2]).decode())
            for key, change in batch.items()
            if change is not None
        ]
        deletes = [(key,) for key, change in batch.items() if change is None]
        with contextlib.closing(self._connect()) as db:
            db.executemany(
                "INSERT INTO entries (key, value, expires_at, tags) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "expires_at = excluded.expires_at, tags = excluded.tags",
                upserts,
            )
            db.executemany("DELETE FROM entries WHERE key = ?", deletes)
            db.commit()
        self.written += len(batch)
