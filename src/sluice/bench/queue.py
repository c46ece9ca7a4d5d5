"""What the durable queue costs per item: `sluice bench queue`.

For each backend (embedded SQLite; pgqueuer on PostgreSQL) it enqueues N items one by one
(as batch intake and the jobs endpoint do), then drains them with a no-op handler, and
reports enqueue items/s, enqueue+dequeue items/s, and the per-item overhead (µs of wall
time per item, both sides). The numbers are the queue's own cost: a real item then spends
its time in the gateway pipeline and upstream.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

from sluice.queue import Job, Priority, QueueSettings, build_queue


async def _measure(url: str, count: int, concurrency: int) -> dict[str, float]:
    queue = build_queue(
        QueueSettings(url=url, name="bench" + uuid.uuid4().hex[:8] + "_", poll_interval_s=0.05)
    )
    await queue.start()
    try:
        started = time.perf_counter()
        for i in range(count):
            await queue.enqueue("bench", {"i": i, "batch": "b"}, Priority.BATCH)
        enqueued = time.perf_counter() - started
        done = 0

        async def handle(_job: Job) -> None:
            nonlocal done
            done += 1

        started = time.perf_counter()
        await queue.drain({"bench": handle}, concurrency=concurrency)
        drained = time.perf_counter() - started
        assert done == count, f"{done} of {count} items ran"
        # batch intake: enqueue_many in chunks of 500 (one statement per chunk)
        started = time.perf_counter()
        for first in range(0, count, 500):
            chunk = [({"i": i}, f"b:{i}") for i in range(first, min(count, first + 500))]
            await queue.enqueue_many("bench", chunk, Priority.BATCH, group="b")
        bulk = time.perf_counter() - started
        await queue.drain({"bench": handle}, concurrency=concurrency)
    finally:
        await queue.close()
    return {
        "enqueue_per_s": count / enqueued,
        "bulk_per_s": count / bulk,
        "dequeue_per_s": count / drained,
        "both_per_s": count / (enqueued + drained),
        "us_per_item": (enqueued + drained) / count * 1e6,
    }


def _pg_schema(url: str) -> tuple[str, str]:
    schema = "sluice_bench_" + uuid.uuid4().hex[:8]
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return schema, f"{url}?options=-csearch_path%3D{schema}"


def _drop_schema(url: str, schema: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


def run(count: int, concurrency: int, postgres_url: str | None) -> str:
    rows: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'queue.db'}"
        rows.append(("sqlite (embedded)", asyncio.run(_measure(url, count, concurrency))))
    if postgres_url:
        schema, url = _pg_schema(postgres_url)
        try:
            rows.append(("postgresql (pgqueuer)", asyncio.run(_measure(url, count, concurrency))))
        finally:
            _drop_schema(postgres_url, schema)
    load = os.getloadavg()[0]
    out = [
        f"{count} items, worker concurrency {concurrency}, no-op handler; "
        f"load average {load:.1f} on {os.cpu_count()} cores",
        "",
        "| backend | enqueue items/s | dequeue+run items/s | enqueue+dequeue items/s "
        "| µs per item (both sides) | enqueue_many items/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, m in rows:
        out.append(
            f"| {name} | {m['enqueue_per_s']:.0f} | {m['dequeue_per_s']:.0f} "
            f"| {m['both_per_s']:.0f} | {m['us_per_item']:.0f} | {m['bulk_per_s']:.0f} |"
        )
    return "\n".join(out)
