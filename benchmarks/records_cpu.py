"""CPU of the records path per call, measured where it runs (issue 20): `Recorder.finish`
(record, previews, metrics, alert rules, spool, queueing) in the event loop's thread and
`RecordStore.write_batch` in the writer thread, each timed with `time.thread_time()` (the
calling thread's own CPU, so other processes' load does not enter). A gateway runs in this
process against the canned C upstream (`canned_upstream.c`) with the built-in config,
records on (SQLite); `--calls` JSON or streamed calls at `--concurrency` through aiohttp.

    .venv/bin/python benchmarks/records_cpu.py [--calls 3000] [--rounds 3] [--src OTHER/src]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--src", help="measure another checkout's src/ (a 'before')")
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory(prefix="sluice-records-") as tmp_name:
        tmp = Path(tmp_name)
        os.chdir(tmp)  # the record spool's directory is relative
        from workers_canned import record_bodies, start_canned

        canned = start_canned(tmp, *record_bodies(tmp))
        os.environ.update(
            SLUICE_SIM_URL=canned.url,
            SLUICE_RECORDS="true",
            SLUICE_RECORDS_URL=f"sqlite:///{tmp / 'records.db'}",
            SLUICE_SEMANTIC_CACHE="false",
        )
        try:
            import uvloop

            uvloop.run(run(args))
        finally:
            canned.stop()


async def run(args: argparse.Namespace) -> None:
    import aiohttp

    import sluice
    from sluice.bench.overhead import _body
    from sluice.config import default_config
    from sluice.observe.recorder import Recorder
    from sluice.observe.store import RecordStore
    from sluice.server import start

    spent = {"finish": 0.0, "write": 0.0, "rows": 0.0}
    finish, write = Recorder.finish, RecordStore.write_batch

    last: dict[str, Any] = {}

    def timed_finish(self: Recorder, *a: Any, **k: Any) -> None:
        last.update(recorder=self, args=a, kwargs=k)
        t = time.thread_time()
        finish(self, *a, **k)
        spent["finish"] += time.thread_time() - t

    def timed_write(self: RecordStore, records: Any) -> None:
        records = list(records)
        t = time.thread_time()
        write(self, records)
        spent["write"] += time.thread_time() - t
        spent["rows"] += len(records)

    Recorder.finish = timed_finish  # type: ignore[method-assign]
    RecordStore.write_batch = timed_write  # type: ignore[method-assign]
    print(f"sluice from {Path(sluice.__file__).parent}")  # noqa: T201
    runner, port = await start(default_config())
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    table: dict[str, list[tuple[float, float]]] = {}
    replay: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as client:
            for mode in ("json", "stream"):
                body = _body(mode == "stream")

                async def one() -> None:
                    async with client.post(
                        url, data=body, headers={"content-type": "application/json"}
                    ) as r:
                        await r.read()
                        assert r.status == 200, r.status

                async def calls(n: int) -> None:
                    todo = iter(range(n))

                    async def worker() -> None:
                        for _ in todo:
                            await one()

                    await asyncio.gather(*(worker() for _ in range(args.concurrency)))

                await calls(300)  # warm-up
                for r in range(args.rounds):
                    await asyncio.sleep(1.2)  # the writer's last batch of the round before
                    spent.update(finish=0.0, write=0.0, rows=0.0)
                    await calls(args.calls)
                    await asyncio.sleep(1.2)  # flushed (every 0.5 s)
                    f_us = spent["finish"] / args.calls * 1e6
                    w_us = spent["write"] / max(spent["rows"], 1) * 1e6
                    table.setdefault(mode, []).append((f_us, w_us))
                    print(  # noqa: T201
                        f"{mode:<7}{r + 1:>3}  Recorder.finish {f_us:6.1f} µs/call   "
                        f"write_batch {w_us:6.1f} µs/record ({spent['rows']:.0f} records)",
                        flush=True,
                    )
                # The last call's finish again, 1,000 at a time (the writer drains between):
                # no network, no other request in between, so less sensitive to load.
                recorder, a, k = last["recorder"], last["args"], last["kwargs"]
                best = float("inf")
                for _ in range(5):
                    t = time.thread_time()
                    for _ in range(1000):
                        finish(recorder, *a, **k)
                    best = min(best, (time.thread_time() - t) / 1000 * 1e6)
                    await asyncio.sleep(0.7)
                replay.setdefault(mode, best)
                print(f"{mode:<7} replayed finish: best of 5 × 1,000: {best:.1f} µs")  # noqa: T201
    finally:
        await runner.cleanup()
    for mode, rows in table.items():
        print(  # noqa: T201
            f"median {mode:<7} finish {statistics.median(f for f, _ in rows):6.1f}  "
            f"write {statistics.median(w for _, w in rows):6.1f} µs"
        )
    print(f"load average {os.getloadavg()[0]:.2f}")  # noqa: T201


if __name__ == "__main__":
    main()
