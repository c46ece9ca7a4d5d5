"""The durable queue on both backends: embedded SQLite and pgqueuer on PostgreSQL.

Real databases; the crash test kills a worker process with SIGKILL while it holds items
and checks another worker runs them, each result written exactly once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.queue import Job, Priority, Queue, QueueSettings, build_queue
from tests.governance_rig import postgres_schema
from tests.queue_worker import results_db

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'queue.db'}"
        return
    with postgres_schema() as url:
        yield url


def settings(url: str, **kw: Any) -> QueueSettings:
    return QueueSettings(url=url, name="t" + uuid.uuid4().hex[:8] + "_", poll_interval_s=0.1, **kw)


@pytest.fixture
async def queue(queue_url: str) -> AsyncIterator[Queue]:
    q = build_queue(settings(queue_url))
    await q.start()
    yield q
    await q.close()


async def test_priority_order_then_fifo(queue: Queue) -> None:
    for i in range(3):
        await queue.enqueue("k", {"n": f"batch{i}"}, Priority.BATCH)
    await queue.enqueue("k", {"n": "job0"}, Priority.JOB)
    await queue.enqueue("k", {"n": "interactive0"}, Priority.INTERACTIVE)
    await queue.enqueue("k", {"n": "job1"}, Priority.JOB)
    assert await queue.depth_by_priority() == {"interactive": 1, "job": 2, "batch": 3}
    assert await queue.oldest_age_s() > 0
    seen: list[str] = []

    async def handle(job: Job) -> None:
        seen.append(job.payload["n"])

    await queue.drain({"k": handle}, concurrency=1)
    assert seen == ["interactive0", "job0", "job1", "batch0", "batch1", "batch2"]
    assert await queue.depth_by_priority() == {"interactive": 0, "job": 0, "batch": 0}
    assert await queue.oldest_age_s() == 0
    assert queue.stats.completed == 6


async def test_dedupe_key_returns_the_waiting_twin(queue: Queue) -> None:
    first = await queue.enqueue("k", {"n": 1}, Priority.JOB, dedupe_key="same")
    again = await queue.enqueue("k", {"n": 2}, Priority.JOB, dedupe_key="same")
    other = await queue.enqueue("k", {"n": 3}, Priority.JOB, dedupe_key="other")
    assert first == again != other
    seen: list[int] = []

    async def handle(job: Job) -> None:
        seen.append(job.payload["n"])

    await queue.drain({"k": handle})
    assert sorted(seen) == [1, 3]
    # once done, the key is free again
    later = await queue.enqueue("k", {"n": 4}, Priority.JOB, dedupe_key="same")
    assert later != first


async def test_cancel_group_removes_waiting_items_only(queue: Queue) -> None:
    for i in range(5):
        await queue.enqueue("k", {"n": i}, Priority.BATCH, group="b1")
    await queue.enqueue("k", {"n": 99}, Priority.BATCH, group="b2")
    assert await queue.cancel_group("b1") == 5
    assert await queue.cancel_group("b1") == 0
    assert await queue.cancel_group("nope") == 0
    seen: list[int] = []

    async def handle(job: Job) -> None:
        assert job.group == "b2"
        seen.append(job.payload["n"])

    await queue.drain({"k": handle})
    assert seen == [99]


async def test_cancel_mid_run_stops_new_items(queue: Queue) -> None:
    for i in range(30):
        await queue.enqueue("k", {"n": i}, Priority.BATCH, group="g")
    seen: list[int] = []
    cancelled = asyncio.Event()

    async def handle(job: Job) -> None:
        seen.append(job.payload["n"])
        if len(seen) == 3:
            await queue.cancel_group("g")
            cancelled.set()

    await queue.drain({"k": handle}, concurrency=1)
    assert cancelled.is_set()
    # items already picked when the cancel came may finish; nothing after them starts
    assert 3 <= len(seen) <= 5
    assert await queue.depth_by_priority() == {"interactive": 0, "job": 0, "batch": 0}


async def test_a_raising_handler_drops_its_item_and_keeps_going(queue: Queue) -> None:
    await queue.enqueue("k", {"n": 1}, Priority.JOB)
    await queue.enqueue("k", {"n": 2}, Priority.JOB)
    seen: list[int] = []

    async def handle(job: Job) -> None:
        if job.payload["n"] == 1:
            raise RuntimeError("boom")
        seen.append(job.payload["n"])

    await queue.drain({"k": handle}, concurrency=1)
    assert seen == [2]
    assert queue.stats.failed == 1
    assert queue.stats.completed == 1


async def test_only_the_handlers_kinds_are_taken(queue: Queue) -> None:
    await queue.enqueue("mine", {"n": 1}, Priority.JOB)
    await queue.enqueue("theirs", {"n": 2}, Priority.JOB)
    seen: list[int] = []

    async def handle(job: Job) -> None:
        seen.append(job.payload["n"])

    await queue.drain({"mine": handle})
    assert seen == [1]
    assert sum((await queue.depth_by_priority()).values()) == 1


def _worker(url: str, name: str, results: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.queue_worker", url, str(results), "--name", name, *extra],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


async def test_kill_9_mid_run_items_complete_exactly_once(queue_url: str, tmp_path: Path) -> None:
    """A worker holding items is SIGKILLed; a second worker takes them after the lock
    timeout; every item's result is written once."""
    s = settings(queue_url, lock_timeout_s=2.0)
    q = build_queue(s)
    await q.start()
    try:
        for i in range(40):
            await q.enqueue("item", {"key": f"k{i}"}, Priority.BATCH)
        results = tmp_path / "results.db"
        results_db(str(results)).close()
        first = _worker(queue_url, s.name, results, "--hold-s", "600", "--concurrency", "4")
        try:
            started: list[Any] = []
            for _ in range(600):  # until the first worker holds its items (≤ 60 s)
                await asyncio.sleep(0.1)
                if results.exists():
                    with sqlite3.connect(results, timeout=30) as db:
                        started = db.execute("SELECT key FROM runs").fetchall()
                if len(started) >= 4:
                    break
            assert len(started) >= 4, "the first worker never started"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        held = {k for (k,) in started}
        second = _worker(queue_url, s.name, results, "--drain", "--concurrency", "4")
        assert second.wait(timeout=240) == 0
        with sqlite3.connect(results, timeout=30) as db:
            done = db.execute("SELECT key, pid FROM results").fetchall()
            reruns = db.execute(
                "SELECT key FROM runs WHERE pid = ? ORDER BY key", (second.pid,)
            ).fetchall()
        keys = [k for k, _ in done]
        assert sorted(keys) == sorted(f"k{i}" for i in range(40))  # all, once each (PK)
        assert all(pid == second.pid for _, pid in done)  # the killed one wrote nothing
        assert held <= {k for (k,) in reruns}  # the dead worker's items were picked again
        assert sum((await q.depth_by_priority()).values()) == 0
    finally:
        await q.close()


async def test_two_workers_share_one_queue(queue_url: str, tmp_path: Path) -> None:
    s = settings(queue_url)
    q = build_queue(s)
    await q.start()
    try:
        for i in range(60):
            await q.enqueue("item", {"key": f"k{i}"}, Priority.BATCH)
        results = tmp_path / "results.db"
        results_db(str(results)).close()
        workers = [
            # a lock timeout far above any stall of this loaded machine: no re-pick
            _worker(
                queue_url, s.name, results, "--drain", "--hold-s", "0.05", "--lock-timeout-s", "30"
            )
            for _ in range(2)
        ]
        for w in workers:
            assert w.wait(timeout=240) == 0
        with sqlite3.connect(results, timeout=30) as db:
            runs = db.execute("SELECT key, pid FROM runs").fetchall()
            done = db.execute("SELECT count(*) FROM results").fetchone()[0]
        assert done == 60
        assert len(runs) == 60  # no item ran twice while both workers were alive
        assert {pid for _, pid in runs} == {w.pid for w in workers}  # both took a share
    finally:
        await q.close()


async def test_enqueue_many_skips_dedupe_twins_and_keeps_order(queue: Queue) -> None:
    await queue.enqueue("k", {"n": "x"}, Priority.BATCH, dedupe_key="b:x")
    items = [({"n": str(i)}, f"b:{i}") for i in range(5)] + [({"n": "x2"}, "b:x")]
    assert await queue.enqueue_many("k", items, Priority.BATCH, group="b") == 5
    assert await queue.enqueue_many("k", [], Priority.BATCH) == 0
    seen: list[str] = []

    async def handle(job: Job) -> None:
        seen.append(job.payload["n"])

    await queue.drain({"k": handle}, concurrency=1)
    assert seen == ["x", "0", "1", "2", "3", "4"]


async def test_postgres_producer_reconnects_after_a_lost_connection() -> None:
    from sluice.queue.pg import PgQueue

    with postgres_schema() as url:
        q = build_queue(settings(url))
        assert isinstance(q, PgQueue)
        await q.start()
        try:
            await q.enqueue("k", {"n": 1}, Priority.JOB)
            assert q._conn is not None
            await q._conn.close()  # as when PostgreSQL restarts under us
            await q.enqueue("k", {"n": 2}, Priority.JOB)
            assert (await q.depth_by_priority())["job"] == 2
        finally:
            await q.close()
