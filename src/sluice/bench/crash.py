"""`sluice bench crash`: two gateway processes on Redis + PostgreSQL, one killed with
SIGKILL under load. Measures what the client saw against what survived: 200s without a
call record or ledger row (after the spool replay), how long the dead replica's budget
reservations stayed held, how long a retry of its in-flight Idempotency-Key waited.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import aiohttp
import yaml
from sqlalchemy import bindparam, create_engine, text

from sluice.bench.processes import start_gateway, start_sim

ROOT = Path(__file__).parents[3]


def _config(tmp: Path, store_url: str, redis_url: str, prefix: str) -> Path:
    data: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "sim.yaml").read_text())
    data["observability"] = {
        "records": {"store_url": store_url, "spool_dir": str(tmp / "spool")},
        "metrics_auth": False,
    }
    data["governance"] = {"store_url": store_url, "auth": {"enabled": True}}
    data["limits"] = {
        "enabled": True,
        "backend": "redis",
        "redis_url": redis_url,
        "key_prefix": prefix + "gov:",
        "ledger": {"store_url": store_url},
    }
    data["cache"] = {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix + "c:"}
    path = tmp / "crash.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Load:
    def __init__(self, key: str) -> None:
        self.auth = {"authorization": f"Bearer {key}"}
        self.ok: list[str] = []  # request ids the client saw complete with 200
        self.failed = 0
        self.stop = False

    async def worker(self, http: aiohttp.ClientSession, urls: list[str], n: int) -> None:
        i = 0
        while not self.stop:
            i += 1
            url = urls[(n + i) % len(urls)]
            rid = f"crash-{uuid.uuid4().hex}"
            stream = i % 2 == 0
            body = {
                "model": "gpt-4o-mini",
                "stream": stream,
                "max_tokens": 40,
                "messages": [{"role": "user", "content": f"load {n} {i}"}],
            }
            headers = {**self.auth, "x-sluice-request-id": rid, "x-sim-tps": "200"}
            try:
                async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
                    data = await r.read()
                    whole = not stream or data.rstrip().endswith(b"[DONE]")
                    if r.status == 200 and whole:
                        self.ok.append(rid)
                        continue
            except aiohttp.ClientError:
                pass
            self.failed += 1
            await asyncio.sleep(0.01)


async def _reserved(http: aiohttp.ClientSession, url: str, auth: dict[str, str]) -> float:
    async with http.get(url + "/v1/sluice/usage", headers=auth) as resp:
        body = await resp.json()
    return float(sum(b["reserved"] for b in body.get("budgets", [])))


def _present(store_url: str, table: str, ids: list[str]) -> int:
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            stmt = text(
                f"SELECT count(DISTINCT request_id) FROM {table} WHERE request_id IN :ids"
            ).bindparams(bindparam("ids", expanding=True))
            return int(conn.execute(stmt, {"ids": ids}).scalar_one())
    finally:
        engine.dispose()


async def _idempotent_takeover(
    http: aiohttp.ClientSession, a: str, b: str, auth: dict[str, str], kill: Any
) -> float:
    """A slow call with an Idempotency-Key on A; A is killed; the same call on B: seconds
    from the kill to B's 200."""
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "x"}],
    }
    headers = {**auth, "idempotency-key": uuid.uuid4().hex, "x-sim-tps": "20"}
    first = asyncio.ensure_future(http.post(a + "/v1/chat/completions", json=body, headers=headers))
    await asyncio.sleep(1.0)  # A holds the key
    kill()
    killed = time.monotonic()
    async with http.post(b + "/v1/chat/completions", json=body, headers=headers) as resp:
        await resp.read()
        took = time.monotonic() - killed
        status = resp.status
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    return took if status == 200 else float("nan")


async def _run(store_url: str, redis_url: str, seconds: float, concurrency: int) -> str:
    env = {"SLUICE_KEY_PEPPER": "bench-pepper-" + "p" * 24, "SLUICE_ADMIN_KEY": "bench-admin"}
    with TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = str(_config(tmp, store_url, redis_url, f"sluice-bench:{uuid.uuid4().hex}:"))
        sim = start_sim(tmp)
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        a = start_gateway(tmp / "a", sim.url, config=config, env=env)
        b = start_gateway(tmp / "b", sim.url, config=config, env=env)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    a.url + "/admin/keys",
                    json={"tenant": "crash", "budgets": [{"usd": 100000, "period": "total"}]},
                    headers={"authorization": "Bearer bench-admin"},
                ) as resp:
                    key = (await resp.json())["key"]
                load = Load(key)
                workers = [
                    asyncio.ensure_future(load.worker(http, [a.url, b.url], n))
                    for n in range(concurrency)
                ]
                await asyncio.sleep(seconds / 2)
                takeover = await _idempotent_takeover(
                    http, a.url, b.url, load.auth, lambda: os.kill(a.pid, signal.SIGKILL)
                )
                killed = time.monotonic() - takeover if takeover == takeover else time.monotonic()
                await asyncio.sleep(seconds / 2)
                load.stop = True
                await asyncio.gather(*workers)
                released = float("nan")
                while time.monotonic() - killed < 90:
                    if await _reserved(http, b.url, load.auth) == 0:
                        released = time.monotonic() - killed
                        break
                    await asyncio.sleep(0.5)
            # The survivor replays the dead replica's spool segments (every 30 s).
            deadline = time.monotonic() + 60
            recorded = 0
            while time.monotonic() < deadline:
                recorded = _present(store_url, "call_records", load.ok)
                if recorded == len(load.ok):
                    break
                await asyncio.sleep(1)
            recovered = time.monotonic() - killed
            ledger = 0
            while time.monotonic() < deadline + 30:
                ledger = _present(store_url, "sluice_spend_ledger", load.ok)
                if ledger == len(load.ok):
                    break
                await asyncio.sleep(1)
            ledger_recovered = time.monotonic() - killed
        finally:
            for child in (a, b, sim):
                child.stop()
    return "\n".join(
        [
            f"two replicas, {concurrency} concurrent callers, {seconds:.0f} s, replica A "
            "killed with SIGKILL half way",
            f"client-visible 200s: {len(load.ok)} (other outcomes: {load.failed})",
            f"200s without a call record: {len(load.ok) - recorded} "
            f"(all recorded {recovered:.1f} s after the kill, spool replayed by B)",
            f"200s without a ledger row: {len(load.ok) - ledger} "
            f"(all written {ledger_recovered:.1f} s after the kill)",
            f"dead replica's reservations released after: {released:.1f} s",
            f"retry of its in-flight Idempotency-Key answered after: {takeover:.1f} s",
        ]
    )


def run(store_url: str, redis_url: str, seconds: float, concurrency: int) -> str:
    schema = "sluice_crash_" + uuid.uuid4().hex[:10]
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in store_url else "?"
    scoped = f"{store_url}{sep}options=-csearch_path%3D{schema}"
    try:
        return asyncio.run(_run(scoped, redis_url, seconds, concurrency))
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()
