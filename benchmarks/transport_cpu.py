"""CPU per upstream call of each transport (`aiohttp` default, `lean` and `pyreqwest`
opt-in) through the `UpstreamTransport` seam, against the canned C upstream
(`canned_upstream.c`, another process): only this process's CPU (all threads, so
pyreqwest's Rust runtime thread counts) is measured. JSON calls (`post`) and streamed ones
(`open_stream`, read to the end: the simulator's recorded 28-event answer), `--calls` per row
at `--concurrency`, rows interleaved over `--rounds`; medians at the end.

    .venv/bin/python benchmarks/transport_cpu.py [--rounds 3] [--calls 3000] [--concurrency 16]

Needs gcc (the canned upstream); pyreqwest rows need `pip install -e '.[reqwest]'`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from sluice.bench.overhead import _body
from sluice.config import TimeoutConfig
from sluice.providers.http import TransportKind, UpstreamTransport, make_transport

sys.path.insert(0, str(Path(__file__).parent))
from workers_canned import record_bodies, start_canned

HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
TIMEOUTS = TimeoutConfig()


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def per_call(call: Callable[[], Awaitable[None]], calls: int, concurrency: int) -> float:
    """CPU µs per call of `calls` calls, `concurrency` at a time."""
    todo = iter(range(calls))

    async def worker() -> None:
        for _ in todo:
            await call()

    start = cpu()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (cpu() - start) / calls * 1e6


def caller(client: UpstreamTransport, url: str, stream: bool) -> Callable[[], Awaitable[None]]:
    body = _body(stream)

    async def post() -> None:
        await client.post(url, HEADERS, body, TIMEOUTS, "bench")

    async def read_stream() -> None:
        async with client.open_stream(url, HEADERS, body, TIMEOUTS, "bench") as (_, events):
            async for _batch in events:
                pass

    return read_stream if stream else post


async def run(url: str, kinds: list[TransportKind], args: argparse.Namespace) -> None:
    clients = {kind: make_transport(kind, "bench", 64) for kind in kinds}
    table: dict[tuple[str, str], list[float]] = {}
    try:
        for mode in ("json", "stream"):
            calls = {k: caller(c, url, mode == "stream") for k, c in clients.items()}
            for call in calls.values():  # warm-up: connections, caches
                await per_call(call, 200, args.concurrency)
            for r in range(args.rounds):
                shift = r % len(kinds)
                for kind in kinds[shift:] + kinds[:shift]:
                    us = await per_call(calls[kind], args.calls, args.concurrency)
                    table.setdefault((mode, kind), []).append(us)
                    print(f"{mode:<7}{r + 1:>3} {kind:<10} {us:7.1f} µs per call", flush=True)  # noqa: T201
    finally:
        for client in clients.values():
            await client.close()
    print("\nmedians (µs of this process's CPU per call):")  # noqa: T201
    for (mode, kind), values in table.items():
        print(f"{mode:<7} {kind:<10} {statistics.median(values):7.1f}")  # noqa: T201
    print(f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    kinds: list[TransportKind] = ["aiohttp", "lean"]
    if importlib.util.find_spec("pyreqwest") is not None:
        kinds.append("pyreqwest")
    with tempfile.TemporaryDirectory(prefix="sluice-transport-") as tmp_name:
        tmp = Path(tmp_name)
        canned = start_canned(tmp, *record_bodies(tmp))
        try:
            uvloop.run(run(canned.url + "/v1/chat/completions", kinds, args))
        finally:
            canned.stop()


if __name__ == "__main__":
    main()
