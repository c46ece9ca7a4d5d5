"""Run-mode batches against the zero-latency simulator: `sluice bench batch`.

In one process (the gateway, its queue worker, the simulator beside it in the same loop),
it measures:

1. items/s of a run-mode batch (`--items`, default 2,000): from `POST /v1/batches` until
   the batch is `completed`, output file written;
2. the same requests as interactive calls over HTTP at the queue's concurrency, for
   comparison: the batch's extra wall time per item over that is the queue's overhead
   (intake, pick, lease, the item row's two writes, finalizing);
3. interactive p50 latency, idle and while a `--big` (default 10,000) item batch runs.

Caches are off (every item goes upstream). Other processes share the machine: the load
average is printed with the numbers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from sluice import server
from sluice.config import SluiceConfig, default_config
from sluice.sim.config import SimConfig
from sluice.sim.server import start as start_sim


def _config(sim_url: str, state: Path) -> SluiceConfig:
    data = default_config({"SLUICE_SIM_URL": sim_url}).model_dump()
    data["cache"]["exact"]["enabled"] = False
    data["cache"]["semantic"]["enabled"] = False
    data["state_dir"] = str(state)
    db = f"sqlite:///{state / 'sluice.db'}"
    data["observability"]["records"]["store_url"] = db
    data["governance"]["store_url"] = db
    data["files"].update(store_url=db, blob_dir=str(state / "files"))
    data["batch"].update(store_url=db)
    data["queue"].update(url=f"sqlite:///{state / 'queue.db'}", poll_interval_s=0.05)
    return SluiceConfig.model_validate(data)


def _body(n: int, tag: str) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": f"{tag} question {n}"}],
    }


async def _batch(http: aiohttp.ClientSession, base: str, count: int, tag: str) -> str:
    lines = [
        {
            "custom_id": f"{tag}-{n}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": _body(n, tag),
        }
        for n in range(count)
    ]
    form = aiohttp.FormData()
    form.add_field("purpose", "batch")
    form.add_field("file", b"\n".join(orjson.dumps(x) for x in lines), filename="in.jsonl")
    async with http.post(base + "/v1/files", data=form) as resp:
        file_id = (await resp.json())["id"]
    body = {
        "input_file_id": file_id,
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
    }
    async with http.post(base + "/v1/batches", json=body) as resp:
        return str((await resp.json())["id"])


async def _status(http: aiohttp.ClientSession, base: str, batch_id: str) -> dict[str, Any]:
    async with http.get(f"{base}/v1/batches/{batch_id}") as resp:
        body: dict[str, Any] = await resp.json()
        return body


async def _until_done(http: aiohttp.ClientSession, base: str, batch_id: str) -> dict[str, Any]:
    while True:
        status = await _status(http, base, batch_id)
        if status["status"] in ("completed", "failed", "expired", "cancelled"):
            return status
        await asyncio.sleep(0.02)


async def _direct(http: aiohttp.ClientSession, base: str, count: int, concurrency: int) -> float:
    """Seconds for `count` interactive calls, `concurrency` at a time."""
    todo = iter(range(count))

    async def worker() -> None:
        for n in todo:
            async with http.post(base + "/v1/chat/completions", json=_body(n, "direct")) as r:
                await r.read()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _p50(http: aiohttp.ClientSession, base: str, count: int, tag: str) -> float:
    times: list[float] = []
    for n in range(count):
        started = time.perf_counter()
        async with http.post(base + "/v1/chat/completions", json=_body(n, tag)) as r:
            await r.read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _worker(config: SluiceConfig, state: Path) -> subprocess.Popen[bytes]:
    """`sluice batch worker` on the same config (batch.worker: separate)."""
    file = state / "sluice.yaml"
    file.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    with (state / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice.cli",
                "batch",
                "worker",
                "--config",
                str(file),
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def _measure(items: int, big: int, probes: int, separate: bool) -> dict[str, Any]:
    sim_runner, sim_port = await start_sim(SimConfig(port=0))
    with tempfile.TemporaryDirectory() as tmp:
        config = _config(f"http://127.0.0.1:{sim_port}", Path(tmp))
        worker = None
        if separate:
            data = config.model_dump()
            data["batch"]["worker"] = "separate"
            config = SluiceConfig.model_validate(data)
            worker = _worker(config, Path(tmp))
        runner, port = await server.start(config)
        base = f"http://127.0.0.1:{port}"
        out: dict[str, Any] = {"concurrency": config.queue.concurrency}
        try:
            async with aiohttp.ClientSession() as http:
                await _p50(http, base, 20, "warmup")
                started = time.perf_counter()
                batch_id = await _batch(http, base, items, "run")
                done = await _until_done(http, base, batch_id)
                took = time.perf_counter() - started
                assert done["request_counts"]["completed"] == items, done
                out["batch_items_per_s"] = items / took
                direct = await _direct(http, base, items, config.queue.concurrency)
                out["direct_items_per_s"] = items / direct
                out["overhead_ms_per_item"] = (took - direct) / items * 1000
                out["p50_idle_ms"] = await _p50(http, base, probes, "idle")
                big_id = await _batch(http, base, big, "big")
                await asyncio.sleep(0.5)  # the worker is busy with it
                out["p50_busy_ms"] = await _p50(http, base, probes, "busy")
                status = await _status(http, base, big_id)
                out["big_done_while_probing"] = status["request_counts"]["completed"]
                out["big_status"] = status["status"]
                async with http.post(f"{base}/v1/batches/{big_id}/cancel") as resp:
                    await resp.read()
        finally:
            await runner.cleanup()
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(30)
            await sim_runner.cleanup()
    return out


def run(items: int, big: int, probes: int, separate: bool = False) -> str:
    m = asyncio.run(_measure(items, big, probes, separate))
    load = os.getloadavg()[0]
    ratio = m["p50_busy_ms"] / m["p50_idle_ms"]
    return "\n".join(
        [
            f"zero-latency simulator, queue concurrency {m['concurrency']}, caches off, batch "
            f"items run {'in a separate `sluice batch worker` process' if separate else 'inline'}; "
            f"load average {load:.1f} on {os.cpu_count()} cores",
            "",
            "| measure | value |",
            "| --- | ---: |",
            f"| run-mode batch, {items} items: items/s | {m['batch_items_per_s']:.0f} |",
            f"| same calls over HTTP, {m['concurrency']} at a time: calls/s "
            f"| {m['direct_items_per_s']:.0f} |",
            f"| batch overhead per item vs those calls (ms) | {m['overhead_ms_per_item']:.2f} |",
            f"| interactive p50, idle (ms) | {m['p50_idle_ms']:.2f} |",
            f"| interactive p50 while a {big}-item batch runs (ms) | {m['p50_busy_ms']:.2f} |",
            f"| ratio busy / idle | {ratio:.2f} |",
            f"| items of the big batch done meanwhile ({m['big_status']}) "
            f"| {m['big_done_while_probing']} |",
        ]
    )
