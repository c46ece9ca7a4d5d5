"""Crash test of run-mode batches: a real `sluice serve` process is killed with SIGKILL
in the middle of a 2,000-item batch against the zero-latency simulator, then started
again. Every item completes, none appears twice in the output file, and the spend
ledger holds each item's usage exactly once (an item in flight at the kill runs again, but
only the run whose result is kept is charged: `sluice.state.charges`), so the ledger equals
the output file's usage."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import orjson
import pytest
import yaml
from sqlalchemy import create_engine, text

from sluice import server
from sluice.config import load_config
from sluice.sim.config import SimConfig
from sluice.sim.server import start as start_sim
from sluice.web.jobs import QUEUE_HANDLERS
from tests.integration.test_exactly_once_crash import _config as crash_config
from tests.integration.test_exactly_once_crash import _free_port

pytestmark = pytest.mark.integration

ITEMS = 2000


def _config(path: Path, sim_url: str) -> Path:
    return crash_config(path, sim_url, f"sqlite:///{path / 'sluice.db'}")


def _sluice(config: Path, log_name: str, *args: str) -> subprocess.Popen[bytes]:
    """`sluice ARGS --config CONFIG` in a session of its own (a kill -9 reaches only it), its
    output appended to LOG_NAME beside the config."""
    command = [sys.executable, "-m", "sluice.cli", *args, "--config", str(config)]
    log = (config.parent / log_name).open("ab")
    try:
        return subprocess.Popen(
            [*command, "--log-level", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
            start_new_session=True,
        )
    finally:
        log.close()


def _serve(config: Path, port: int) -> subprocess.Popen[bytes]:
    return _sluice(config, "gateway.log", "serve", "--port", str(port))


def _worker(config: Path) -> subprocess.Popen[bytes]:
    return _sluice(config, "worker.log", "batch", "worker")


async def _ready(client: openai.AsyncOpenAI) -> None:
    for _ in range(600):
        try:
            await client.models.list()
            return
        except openai.APIConnectionError:
            await asyncio.sleep(0.1)
    raise AssertionError("the gateway did not start")


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    runner, port = await start_sim(SimConfig(port=0))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_kill_9_mid_batch_every_item_exactly_once(sim_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, sim_url)
    port = _free_port()
    proc = _serve(config, port)
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    try:
        await _ready(client)
        lines = [
            {
                "custom_id": f"item-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-4o-mini",
                    "max_tokens": 16,
                    "messages": [{"role": "user", "content": f"question number {n}"}],
                },
            }
            for n in range(ITEMS)
        ]
        data = b"\n".join(orjson.dumps(x) for x in lines)
        upload = await client.files.create(file=("in.jsonl", data), purpose="batch")
        batch = await client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while True:  # mid-way: a quarter done
            counts = (await client.batches.retrieve(batch.id)).request_counts
            assert counts is not None
            if counts.completed >= ITEMS // 4:
                break
            await asyncio.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        done_at_kill = counts.completed
        assert done_at_kill < ITEMS

        proc = _serve(config, port)
        await _ready(client)
        got = await client.batches.retrieve(batch.id)
        for _ in range(3000):
            if got.status not in ("in_progress", "finalizing"):
                break
            await asyncio.sleep(0.1)
            got = await client.batches.retrieve(batch.id)
        assert got.status == "completed", got
        assert got.request_counts is not None
        assert (got.request_counts.completed, got.request_counts.failed) == (ITEMS, 0)
        assert got.output_file_id is not None and got.error_file_id is None
        out = [
            orjson.loads(x)
            for x in (await client.files.content(got.output_file_id)).content.splitlines()
        ]
        ids = Counter(o["custom_id"] for o in out)
        assert len(out) == ITEMS and set(ids) == {f"item-{n}" for n in range(ITEMS)}
        assert max(ids.values()) == 1  # none twice
        usage = {
            o["response"]["request_id"]: (
                o["response"]["body"]["usage"]["prompt_tokens"],
                o["response"]["body"]["usage"]["completion_tokens"],
            )
            for o in out
        }
    finally:
        await client.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)

    # The ledger (written after the restart's spool replay and the clean stop's flush).
    engine = create_engine(f"sqlite:///{tmp_path / 'sluice.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT request_id, input_tokens, output_tokens FROM sluice_spend_ledger "
                "WHERE request_id LIKE :p"
            ),
            {"p": f"{batch.id}-%"},
        ).all()
    engine.dispose()
    runs: dict[str, list[tuple[int, int]]] = {}
    for request_id, tokens_in, tokens_out in rows:
        runs.setdefault(request_id, []).append((tokens_in, tokens_out))
    assert set(runs) == set(usage)  # every item charged
    for request_id, charged in runs.items():
        assert all(c == usage[request_id] for c in charged), (request_id, charged)
    reruns = sum(len(c) - 1 for c in runs.values())
    assert reruns == 0  # charged once, however often an item ran
    distinct_in = sum(c[0][0] for c in runs.values())
    distinct_out = sum(c[0][1] for c in runs.values())
    assert (distinct_in, distinct_out) == (
        sum(u[0] for u in usage.values()),
        sum(u[1] for u in usage.values()),
    )
    print(f"killed at {done_at_kill}/{ITEMS}")


async def test_a_separate_worker_process_runs_the_items(sim_url: str, tmp_path: Path) -> None:
    config_file = _config(tmp_path, sim_url)
    data = yaml.safe_load(config_file.read_text())
    data["batch"]["worker"] = "separate"
    config_file.write_text(yaml.safe_dump(data))
    config = load_config(config_file)
    app = server.create_app(config)
    assert "batch.item" not in app[QUEUE_HANDLERS]  # the gateway only takes batches in
    runner, port = await server.start_app(app)
    worker = _worker(config_file)
    client = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    try:
        lines = [
            {
                "custom_id": f"w{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-4o-mini",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": f"worker {n}"}],
                },
            }
            for n in range(50)
        ]
        data_ = b"\n".join(orjson.dumps(x) for x in lines)
        upload = await client.files.create(file=("in.jsonl", data_), purpose="batch")
        batch = await client.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        got = await client.batches.retrieve(batch.id)
        for _ in range(1200):
            if got.status == "completed":
                break
            await asyncio.sleep(0.1)
            got = await client.batches.retrieve(batch.id)
        assert got.status == "completed", got
        assert got.request_counts is not None and got.request_counts.completed == 50
        # The lowest priority for the CPU too: gateways on the same host are scheduled first.
        assert os.getpriority(os.PRIO_PROCESS, worker.pid) == 10
    finally:
        await client.close()
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        await runner.cleanup()
    assert worker.returncode == 0, (tmp_path / "worker.log").read_text()


async def test_two_replicas_kill_one_the_other_finishes(sim_url: str, tmp_path: Path) -> None:
    config = _config(tmp_path, sim_url)
    ports = (_free_port(), _free_port())
    doomed, survivor = _serve(config, ports[0]), _serve(config, ports[1])
    a = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{ports[0]}/v1", api_key="x", max_retries=0)
    b = openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{ports[1]}/v1", api_key="x", max_retries=0)
    try:
        await _ready(a)
        await _ready(b)
        lines = [
            {
                "custom_id": f"r{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "gpt-4o-mini",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": f"replica {n}"}],
                },
            }
            for n in range(1000)
        ]
        upload = await a.files.create(
            file=("in.jsonl", b"\n".join(orjson.dumps(x) for x in lines)), purpose="batch"
        )
        batch = await a.batches.create(
            input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        while True:
            counts = (await b.batches.retrieve(batch.id)).request_counts  # seen by both
            assert counts is not None
            if counts.completed >= 200:
                break
            await asyncio.sleep(0.05)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait()
        got = await b.batches.retrieve(batch.id)
        for _ in range(3000):
            if got.status == "completed":
                break
            await asyncio.sleep(0.1)
            got = await b.batches.retrieve(batch.id)
        assert got.status == "completed", got
        assert got.output_file_id is not None
        out = (await b.files.content(got.output_file_id)).content.splitlines()
        ids = Counter(orjson.loads(x)["custom_id"] for x in out)
        assert len(out) == 1000 and max(ids.values()) == 1
        assert set(ids) == {f"r{n}" for n in range(1000)}
    finally:
        await a.close()
        await b.close()
        for proc in (doomed, survivor):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
