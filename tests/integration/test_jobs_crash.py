"""kill -9 of a gateway while its jobs are running: another gateway on the same state
picks them up after the queue's lock timeout, and each result is written once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sluice.sim.config import SimConfig
from sluice.sim.server import running

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
HELLO = [{"role": "user", "content": "hello"}]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config_file(tmp: Path) -> Path:
    text = (ROOT / "src/sluice/default_config.yaml").read_text()
    text += "\nqueue:\n  lock_timeout_s: 5\n  poll_interval_s: 0.1\n"
    path = tmp / "sluice.yaml"
    path.write_text(text)
    return path


def _spawn(config: Path, sim_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SLUICE_SIM_URL": sim_url}
    return subprocess.Popen(
        [sys.executable, "-m", "sluice.cli", "serve", "--config", str(config), "--port",
         str(port), "--log-level", "warning"],
        env=env,
    )  # fmt: skip


async def _serve(config: Path, sim_url: str, port: int) -> subprocess.Popen[bytes]:
    proc = _spawn(config, sim_url, port)
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            await asyncio.sleep(0.1)
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            assert proc.poll() is None, "gateway exited"
    raise AssertionError("gateway never became ready")


async def test_kill_9_mid_job_runs_it_again_once(tmp_path: Path) -> None:
    slow = SimConfig(port=0).with_latency(ttft_ms=3_600_000)  # held until the kill
    async with running(slow) as sim, aiohttp.ClientSession() as http:
        config = _config_file(tmp_path)
        port = _free_port()
        first = await _serve(config, sim.url, port)
        base = f"http://127.0.0.1:{port}"
        ids: list[str] = []
        try:
            for _ in range(3):
                body = {"request": {"model": "gpt-4o-mini", "messages": HELLO}}
                async with http.post(f"{base}/v1/sluice/jobs", json=body) as resp:
                    assert resp.status == 202
                    ids.append((await resp.json())["id"])
            for _ in range(600):  # until all three are running upstream
                await asyncio.sleep(0.1)
                if sim.state.stats.requests_total >= 3:
                    break
            assert sim.state.stats.requests_total >= 3
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        fast = SimConfig(port=0)
        sim.state.config = fast.model_copy(update={"port": sim.port})
        sim.state._models = dict(fast.models)  # answers at once from now on
        second = await _serve(config, sim.url, port)
        try:
            jobs: dict[str, Any] = {}
            for _ in range(900):
                for job_id in ids:
                    async with http.get(f"{base}/v1/sluice/jobs/{job_id}") as resp:
                        jobs[job_id] = await resp.json()
                if all(j["status"] == "succeeded" for j in jobs.values()):
                    break
                await asyncio.sleep(0.1)
            assert {j["status"] for j in jobs.values()} == {"succeeded"}, jobs
            assert {j["attempts"] for j in jobs.values()} == {2}  # ran again, once
            for j in jobs.values():
                assert j["result"]["choices"][0]["message"]["content"]
            # One finished call per job (the killed attempt never finished, so never
            # charged). Read while the gateway runs: a write that met a busy SQLite file
            # stays in the record spool and is replayed a little later, not lost.
            want = sorted((j, f"{j}.2", 200) for j in ids)
            rows = _job_records()
            for _ in range(600):
                if sorted(rows) == want:
                    break
                await asyncio.sleep(0.1)
                rows = _job_records()
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=60)
    assert sorted(rows) == want


def _job_records() -> list[tuple[str, str, int]]:
    db = Path(os.environ["SLUICE_STATE_DIR"]) / "sluice.db"
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT parent_request_id, request_id, status FROM call_records "
            "WHERE parent_request_id IS NOT NULL ORDER BY request_id"
        ).fetchall()
