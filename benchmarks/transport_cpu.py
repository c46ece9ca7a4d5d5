"""CPU per upstream call of each transport (`aiohttp` default, `lean` opt-in), against the
simulator in the same process: 1,000 sequential calls per row, rows alternating. The numbers
include the simulator's own CPU, so only the differences between rows mean anything.

    .venv/bin/python benchmarks/transport_cpu.py
"""

from __future__ import annotations

import asyncio
import resource

import orjson

from sluice.config import TimeoutConfig
from sluice.providers.http import make_transport
from sluice.sim.config import SimConfig
from sluice.sim.server import start as start_sim


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(calls: int = 1000) -> None:
    runner, port = await start_sim(SimConfig(port=0))
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    body = orjson.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
    )
    headers, timeouts = {"content-type": "application/json"}, TimeoutConfig()
    for kind in ("aiohttp", "lean", "aiohttp", "lean"):
        transport = make_transport("lean" if kind == "lean" else "aiohttp", "bench", 64)
        for _ in range(50):  # warm-up: connections, caches
            await transport.post(url, headers, body, timeouts, "bench")
        start = cpu()
        for _ in range(calls):
            await transport.post(url, headers, body, timeouts, "bench")
        print(f"{kind:8} {(cpu() - start) / calls * 1e6:6.0f} µs per call (client + simulator)")  # noqa: T201
        await transport.close()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
