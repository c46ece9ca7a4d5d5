"""A queue worker process for the crash tests (`python -m tests.queue_worker ...`).

Every item's handler notes that it started (table `runs`), sleeps `hold_s`, then writes
its result once (`INSERT ... ON CONFLICT DO NOTHING` keyed by the item's key): the
idempotent write that turns at-least-once execution into an exactly-once result.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3

from sluice.queue import Job, QueueSettings, build_queue


def results_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS runs (key TEXT, pid INTEGER, attempts INTEGER)")
    db.execute("CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, pid INTEGER)")
    return db


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("results")
    parser.add_argument("--name", default="sluice_")
    parser.add_argument("--hold-s", type=float, default=0.0)
    parser.add_argument("--lock-timeout-s", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--drain", action="store_true")
    args = parser.parse_args()
    db = results_db(args.results)
    queue = build_queue(
        QueueSettings(
            url=args.url, name=args.name, lock_timeout_s=args.lock_timeout_s, poll_interval_s=0.1
        )
    )
    await queue.start()
    pid = os.getpid()

    async def handle(job: Job) -> None:
        key = str(job.payload["key"])
        db.execute("INSERT INTO runs VALUES (?, ?, ?)", (key, pid, job.attempts))
        await asyncio.sleep(args.hold_s)
        db.execute("INSERT INTO results VALUES (?, ?) ON CONFLICT DO NOTHING", (key, pid))

    if args.drain:
        await queue.drain({"item": handle}, concurrency=args.concurrency)
    else:
        await queue.run({"item": handle}, concurrency=args.concurrency)
    await queue.close()


if __name__ == "__main__":
    asyncio.run(main())
