"""`sluice report` on the records of a real mixed workload through the gateway and simulator:
the report's totals match what was sent, the stored records and the simulator's own counts."""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sluice import server
from sluice.observe.store import RecordStore
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration

MODELS = ("gpt-4o-mini", "claude-haiku", "gpt-4o")
USERS = ("alice", "bob", "carol")
FAULTED = {6, 16, 26}  # one call per model (i % 3), far apart: no breaker opens
CALLS = 30


def plan(i: int) -> tuple[str, bool, str | None, dict[str, str]]:
    """Call i: its model, whether it streams, its user (None: no header), its headers."""
    model = MODELS[i % 3]
    stream = i % 2 == 0
    user = None if i % 5 == 4 else USERS[(i // 2) % 3]
    headers = {"x-sluice-feature": "search" if i % 4 == 0 else "chat"}
    if user is not None:
        headers["x-sluice-user"] = user
    if i in FAULTED:
        headers["x-sim-fault"] = "500"
    return model, stream, user, headers


async def send(http: aiohttp.ClientSession, url: str, i: int) -> int:
    model, stream, _, headers = plan(i)
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": "user", "content": f"question number {i}: " + "word " * i}],
    }
    if stream:
        body["stream"] = True
    async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as resp:
        await resp.read()
        return resp.status


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sluice.cli",
        "report",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def report_json(db: str, by: str) -> dict[str, Any]:
    code, out, err = await cli("--store", db, "--json", "--by", by)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


async def test_report_matches_the_workload_the_records_and_the_simulator(
    sim_url: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'records.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    runner, port = await server.start(gateway_config(sim_url).model_validate(data))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        statuses = [await send(http, url, i) for i in range(CALLS)]
        async with http.get(sim_url + "/sim/stats") as r:
            sim = await r.json()
    await runner.cleanup()  # flushes the records

    failed = [i for i, status in enumerate(statuses) if status != 200]
    assert failed == sorted(FAULTED) and {statuses[i] for i in failed} == {500}

    store = RecordStore.open(db)
    records = store.query()
    store.close()
    calls = [r for r in records if r.kind == "call"]
    assert len(calls) == CALLS
    assert any(r.kind == "attempt" for r in records)  # the retries, which must not count

    by_model = await report_json(db, "model")
    total = by_model["total"]
    assert by_model["by"] == "model" and by_model["since"]
    assert total["calls"] == CALLS
    assert total["errors"] == len(FAULTED)
    assert total["error_rate_pct"] == pytest.approx(100 * len(FAULTED) / CALLS)
    # tokens: the report == the stored call records == what the simulator counted
    upstream = sim["by_model"].values()
    sim_in = sum(m["input_tokens"] for m in upstream)
    sim_out = sum(m["output_tokens"] for m in upstream)
    assert sim_in > 0 and sim_out > 0
    assert total["input_tokens"] == sum(r.input_tokens for r in calls) == sim_in
    assert total["output_tokens"] == sum(r.output_tokens for r in calls) == sim_out
    # cost: exact decimal sum of the record costs; calls without a cost (here the failed
    # ones) are counted as unknown, not as $0
    assert Decimal(total["cost_usd"]) == sum(
        (r.cost_usd for r in calls if r.cost_usd is not None), Decimal(0)
    )
    assert Decimal(total["cost_usd"]) > 0
    unpriced = sum(r.cost_usd is None for r in calls)
    assert total["unpriced_calls"] == unpriced
    # latency percentiles over all calls, TTFT over the streamed ones
    assert 0 < total["latency_ms_p50"] <= total["latency_ms_p95"] <= total["latency_ms_p99"]
    assert total["ttft_ms_p50"] is not None

    sent_models = Counter(plan(i)[0] for i in range(CALLS))
    assert {g["group"]: g["calls"] for g in by_model["groups"]} == dict(sent_models)
    assert all(g["errors"] == 1 for g in by_model["groups"])  # one fault per model
    assert sum(g["input_tokens"] for g in by_model["groups"]) == total["input_tokens"]
    # per model, tokens match the simulator (claude-haiku is claude-3-5-haiku-latest upstream)
    groups = {g["group"]: g for g in by_model["groups"]}
    upstream_name = {"claude-haiku": "claude-3-5-haiku-latest"}
    for model in MODELS:
        counted = sim["by_model"][upstream_name.get(model, model)]
        assert groups[model]["input_tokens"] == counted["input_tokens"]
        assert groups[model]["output_tokens"] == counted["output_tokens"]

    by_user = await report_json(db, "user")
    assert by_user["total"] == total  # the same calls, however they are grouped
    sent_users = Counter(plan(i)[2] for i in range(CALLS))
    assert {g["group"]: g["calls"] for g in by_user["groups"]} == dict(sent_users)
    assert None in sent_users  # calls without x-sluice-user form their own group

    code, table, err = await cli("--store", db, "--by", "model")
    assert code == 0, err
    lines = table.splitlines()
    for model in MODELS:
        assert any(line.startswith(model + " ") for line in lines), table
    total_line = next(line for line in lines if line.startswith("TOTAL"))
    assert f" {CALLS} " in total_line
    if unpriced:
        assert f"+{unpriced} unknown" in total_line

    code, _, err = await cli("--store", f"sqlite:///{tmp_path / 'absent.db'}")
    assert code != 0 and "does not exist" in err and "Traceback" not in err
