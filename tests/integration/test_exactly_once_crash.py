"""Async work charged exactly once whatever step a kill -9 lands on (issue 16 residuals).

A real `sluice serve` runs with a SIGKILL armed at one step (`tests/crash_gateway.py`):
before or after an item's result (and charge) is written, or after held charges reached the
ledger but before they were cleared. Then the gateway — or a second replica already
running beside it — finishes the work. On SQLite and on PostgreSQL (pgqueuer), for run-mode
batches, forwarded batches and async jobs, the property is:

- every item is in the output exactly once (a job: succeeded, its result kept);
- the spend ledger holds exactly one row per item, with that item's usage, so the ledger
  equals the sum of the items' usage (no lost charge, no double charge);
- every item has a call record linked to its batch or job.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
import yaml
from sqlalchemy import create_engine, text

from sluice.sim.config import SimConfig
from sluice.sim.server import start as start_sim
from tests.governance_rig import postgres_schema

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
ITEMS = 120
KILL_AT = 30
# Held charges are copied to the ledger a page per housekeeping round (every 0.5 s), so
# that step runs a few times per batch, not once per item.
NTH = {"charges.write.after": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'sluice.db'}"
        return
    with postgres_schema() as url:
        yield url


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    runner, port = await start_sim(SimConfig(port=0))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _config(path: Path, sim_url: str, db: str, **batch: Any) -> Path:
    queue = (
        {"url": f"sqlite:///{path / 'queue.db'}"}
        if db.startswith("sqlite")
        else {"url": db, "name": "t" + uuid.uuid4().hex[:8] + "_"}
    )
    config = {
        "governance": {"auth": {"enabled": False}},
        "observability": {"records": {"store_url": db}},
        "limits": {"enabled": True, "ledger": {"store_url": db}},
        "cache": {"exact": {"enabled": False}, "semantic": {"enabled": False}},
        "queue": {**queue, "lock_timeout_s": 2, "poll_interval_s": 0.1},
        "files": {"store_url": db, "blob_dir": str(path / "files")},
        "batch": {"store_url": db, "max_concurrency": 8, "forward_poll_s": 0.1, **batch},
        "jobs": {"store_url": db},
        "providers": {"sim": {"kind": "openai", "api_base": sim_url + "/v1"}},
        "deployments": [
            {
                "id": "sim-mini",
                "provider": "sim",
                "model": "gpt-4o-mini",
                "serves": ["gpt-4o-mini"],
                "price": {"input": 0.15, "output": 0.6},
            }
        ],
        "state_dir": str(path),
    }
    file = path / "sluice.yaml"
    file.write_text(yaml.safe_dump(config))
    return file


def _serve(
    config: Path, port: int, crash: tuple[str, int] | None = None
) -> subprocess.Popen[bytes]:
    """A gateway in a session of its own; with `crash`, SIGKILLed at that step's Nth call."""
    module = ["tests.crash_gateway", crash[0], str(crash[1])] if crash else ["sluice.cli"]
    log = (config.parent / "gateway.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", *module, "serve", "--config", str(config),
             "--port", str(port), "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, cwd=config.parent, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},  # tests.crash_gateway
        )  # fmt: skip
    finally:
        log.close()


async def _ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(900):
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert proc.poll() is None, "the gateway exited before it was ready"
            await asyncio.sleep(0.1)
    raise AssertionError("the gateway never became ready")


async def _died(proc: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(1200):
        if proc.poll() is not None:
            break
        await asyncio.sleep(0.1)
    assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert "crash_gateway: SIGKILL at" in log.read_text()


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)


def _rows(db: str, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(db.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()


def _lines(n: int) -> bytes:
    return b"\n".join(
        orjson.dumps(
            {
                "custom_id": f"item-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-4o-mini",
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": f"question number {i}"}],
                },
            }
        )
        for i in range(n)
    )


def _check_batch(db: str, batch_id: str, out: list[dict[str, Any]], items: int) -> None:
    """The property: each item once in the output, once in the ledger with its usage, and
    at least one call record."""
    ids = Counter(o["custom_id"] for o in out)
    assert set(ids) == {f"item-{i}" for i in range(items)} and max(ids.values()) == 1
    usage = {
        o["response"]["request_id"]: (
            o["response"]["body"]["usage"]["prompt_tokens"],
            o["response"]["body"]["usage"]["completion_tokens"],
        )
        for o in out
    }
    ledger = _rows(
        db,
        "SELECT request_id, input_tokens, output_tokens, once_key FROM sluice_spend_ledger "
        "WHERE request_id LIKE :p",
        p=f"{batch_id}-%",
    )
    charged = Counter(r[0] for r in ledger)
    assert set(charged) == set(usage), "an item never charged"
    assert max(charged.values()) == 1, [k for k, n in charged.items() if n > 1]
    assert {r[0]: (r[1], r[2]) for r in ledger} == usage
    assert all(r[3] == f"batch:{batch_id}:{r[0][len(batch_id) + 1 :]}" for r in ledger)
    records = _records(db, batch_id)
    assert records >= set(usage), sorted(set(usage) - records)[:5]
    held = _rows(
        db, "SELECT count(*) FROM sluice_batch_items WHERE batch_id = :b AND charge IS NOT NULL",
        b=batch_id,
    )  # fmt: skip
    assert held[0][0] == 0


def _records(db: str, parent: str) -> set[str]:
    sql = "SELECT request_id FROM call_records WHERE parent_request_id = :p"
    return {r[0] for r in _rows(db, sql, p=parent)}


async def _recorded(db: str, batch_id: str, items: int) -> None:
    """Wait (a gateway still running) until every item has a call record: a killed
    replica's records are in its spool, which a live one replays within `ORPHAN_SCAN_S`."""
    for _ in range(300):
        if len(_records(db, batch_id)) >= items:
            return
        await asyncio.sleep(0.2)


async def _batch_until_done(
    client: openai.AsyncOpenAI, batch_id: str, waits: int = 3000
) -> list[dict[str, Any]]:
    got = await client.batches.retrieve(batch_id)
    for _ in range(waits):
        if got.status in ("completed", "failed", "expired", "cancelled"):
            break
        await asyncio.sleep(0.1)
        got = await client.batches.retrieve(batch_id)
    assert got.status == "completed", got
    assert got.output_file_id is not None and got.error_file_id is None, got
    content = (await client.files.content(got.output_file_id)).content
    return [orjson.loads(x) for x in content.splitlines()]


RUN_POINTS = ["batch.finish.before", "batch.finish.after", "charges.write.after"]


async def _killed_then_restarted(
    config: Path, crash: tuple[str, int], items: int
) -> tuple[str, list[dict[str, Any]]]:
    """A batch sent to a gateway that dies at `crash`; a restarted one finishes it.
    (batch id, its output lines)."""
    port = _free_port()
    proc = _serve(config, port, crash)
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=2)
    try:
        await _ready(port, proc)
        upload = await client.files.create(file=("in.jsonl", _lines(items)), purpose="batch")
        batch = await client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        await _died(proc, config.parent / "gateway.log")
        proc = _serve(config, port)
        await _ready(port, proc)
        return batch.id, await _batch_until_done(client, batch.id)
    finally:
        await client.close()
        _stop(proc)


@pytest.mark.parametrize("point", RUN_POINTS)
async def test_run_mode_kill_9_at_each_step(
    point: str, state_url: str, sim_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, sim_url, state_url)
    crash = (point, NTH.get(point, KILL_AT))
    batch_id, out = await _killed_then_restarted(config, crash, ITEMS)
    _check_batch(state_url, batch_id, out, ITEMS)


@pytest.mark.parametrize("point", ["batch.finish.before"])
async def test_two_replicas_race_on_one_batch_and_one_dies(
    point: str, state_url: str, sim_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, sim_url, state_url)
    ports = (_free_port(), _free_port())
    doomed, survivor = _serve(config, ports[0], (point, KILL_AT)), _serve(config, ports[1])
    client = openai.AsyncOpenAI(
        base_url=f"http://127.0.0.1:{ports[1]}/v1", api_key="x", max_retries=2
    )
    try:
        await _ready(ports[0], doomed)
        await _ready(ports[1], survivor)
        upload = await client.files.create(file=("in.jsonl", _lines(ITEMS * 2)), purpose="batch")
        batch = await client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        await _died(doomed, tmp_path / "gateway.log")
        out = await _batch_until_done(client, batch.id)
        await _recorded(state_url, batch.id, ITEMS * 2)
    finally:
        await client.close()
        _stop(doomed, survivor)
    _check_batch(state_url, batch.id, out, ITEMS * 2)


@pytest.mark.parametrize("point", ["batch.finish.after", "charges.write.after"])
async def test_forward_mode_kill_9_between_result_and_charge(
    point: str, state_url: str, sim_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, sim_url, state_url, models={"gpt-4o-mini": "forward"})
    crash = (point, 1 if point.startswith("charges") else 5)
    batch_id, out = await _killed_then_restarted(config, crash, 20)
    _check_batch(state_url, batch_id, out, 20)


_JOB_RECORDS = "SELECT parent_request_id FROM call_records WHERE parent_request_id LIKE 'job%'"
JOB_POINTS = ["jobs.finish.before", "jobs.finish.after", "charges.write.after"]


@pytest.mark.parametrize("point", JOB_POINTS)
async def test_jobs_kill_9_at_each_step(
    point: str, state_url: str, sim_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, sim_url, state_url)
    port = _free_port()
    proc = _serve(config, port, (point, 3))
    base = f"http://127.0.0.1:{port}"
    jobs: dict[str, Any] = {}
    async with aiohttp.ClientSession() as http:
        try:
            await _ready(port, proc)
            for i in range(8):
                body = {
                    "request": {
                        "model": "gpt-4o-mini",
                        "max_tokens": 16,
                        "messages": [{"role": "user", "content": f"job number {i}"}],
                    }
                }
                try:
                    async with http.post(f"{base}/v1/sluice/jobs", json=body) as resp:
                        assert resp.status == 202, await resp.text()
                        jobs[(await resp.json())["id"]] = None
                except aiohttp.ClientError:  # killed meanwhile: its third job has run
                    break
            assert len(jobs) >= 3
            await _died(proc, tmp_path / "gateway.log")
            proc = _serve(config, port)
            await _ready(port, proc)
            for _ in range(900):
                for job_id in jobs:
                    async with http.get(f"{base}/v1/sluice/jobs/{job_id}") as resp:
                        jobs[job_id] = await resp.json()
                if all(j["status"] == "succeeded" for j in jobs.values()):
                    break
                await asyncio.sleep(0.1)
            assert {j["status"] for j in jobs.values()} == {"succeeded"}, jobs
            for _ in range(100):  # the sweep of charges a dead worker held runs every few s
                held = _rows(state_url, "SELECT count(*) FROM sluice_jobs WHERE charge IS NOT NULL")
                if held[0][0] == 0:
                    break
                await asyncio.sleep(0.2)
            for _ in range(300):  # the dead process's records: replayed from its spool
                if {r[0] for r in _rows(state_url, _JOB_RECORDS)} >= set(jobs):
                    break
                await asyncio.sleep(0.2)
        finally:
            _stop(proc)
    usage = {
        job_id: (j["result"]["usage"]["prompt_tokens"], j["result"]["usage"]["completion_tokens"])
        for job_id, j in jobs.items()
    }
    ledger = _rows(
        state_url,
        "SELECT once_key, input_tokens, output_tokens FROM sluice_spend_ledger "
        "WHERE once_key LIKE 'job:%'",
    )
    charged = Counter(r[0] for r in ledger)  # (a job whose 202 the kill cut off: there too)
    assert set(charged) >= {f"job:{j}" for j in jobs} and max(charged.values()) == 1, charged
    assert {r[0][4:]: (r[1], r[2]) for r in ledger if r[0][4:] in jobs} == usage
    assert {r[0] for r in _rows(state_url, _JOB_RECORDS)} >= set(jobs)
