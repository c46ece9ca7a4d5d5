"""Hostile input against a production-shaped gateway (auth on, Redis limits, PostgreSQL
records and ledger): 4xx in the caller's format, never a 500; no row of another call lost;
/metrics bounded."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from decimal import Decimal
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, text

from sluice.governance.ledger import Ledger, LedgerRow
from sluice.governance.limits_config import LedgerConfig
from sluice.observe.records import CallRecord
from sluice.observe.sink import RecordSink
from sluice.observe.store import RecordStore
from tests.governance_rig import ADMIN, postgres_schema
from tests.hostile_rig import Rig, hostile_gateway

pytestmark = pytest.mark.integration

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"


def body(path: str, **extra: Any) -> dict[str, Any]:
    model = "gpt-4o-mini" if path == OPENAI else "claude-haiku"
    return {
        "model": model,
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


async def post(rig: Rig, path: str, raw: bytes, **headers: str) -> tuple[int, Any]:
    wire = "openai" if path == OPENAI else "anthropic"
    all_headers = {**rig.auth(wire), "content-type": "application/json", **headers}
    async with rig.http.post(rig.url + path, data=raw, headers=all_headers) as resp:
        return resp.status, orjson.loads(await resp.read())


def assert_wire_error(path: str, parsed: Any) -> str:
    if path == OPENAI:
        assert set(parsed["error"]) == {"message", "type", "param", "code"}
        return str(parsed["error"]["message"])
    assert parsed["type"] == "error"
    return str(parsed["error"]["message"])


@pytest.mark.parametrize("path", [OPENAI, ANTHROPIC])
async def test_hostile_bodies_get_4xx_not_500(
    sim_url: str, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    deep = b"[" * 300 + b"]" * 300
    plain = orjson.dumps(body(path))
    cases: list[tuple[str, bytes, dict[str, str], int]] = [
        ("huge max_tokens", json.dumps(body(path, max_tokens=10**19)).encode(), {}, 400),
        ("30-digit max_tokens", json.dumps(body(path, max_tokens=10**30)).encode(), {}, 400),
        ("300 deep", plain[:-1] + b',"top_logprobs":' + deep + b"}", {}, 400),
        ("gzip header, plain body", plain, {"content-encoding": "gzip"}, 400),
        ("deflate header, plain body", plain, {"content-encoding": "deflate"}, 400),
        ("unknown encoding", plain, {"content-encoding": "br"}, 415),
        ("gzip bomb", gzip.compress(b" " * (11 * 1024 * 1024)), {"content-encoding": "gzip"}, 413),
        ("user 256", plain, {"x-sluice-user": "u" * 256}, 400),
        ("feature with a control char", plain, {"x-sluice-feature": "a\tb"}, 400),
        (
            "user NUL in body",
            orjson.dumps(body(path, metadata={"user_id": "a\x00b"}, user="a\x00b")),
            {},
            400,
        ),
    ]
    async with hostile_gateway(sim_url, monkeypatch) as rig:
        for name, raw, headers, want in cases:
            status, parsed = await post(rig, path, raw, **headers)
            assert status == want, (name, status, parsed)
            assert "internal" not in assert_wire_error(path, parsed), name
        # Well-formed compressed bodies and a 255-character label are served.
        for encoding, packed in (("gzip", gzip.compress(plain)), ("deflate", zlib.compress(plain))):
            status, parsed = await post(rig, path, packed, **{"content-encoding": encoding})
            assert status == 200, (encoding, parsed)
        status, _ = await post(rig, path, plain, **{"x-sluice-user": "u" * 255})
        assert status == 200


async def test_unknown_models_do_not_grow_metrics(
    sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with hostile_gateway(sim_url, monkeypatch) as rig:
        async with rig.http.get(rig.url + "/metrics", headers=ADMIN) as resp:
            before = len(await resp.read())
        for i in range(40):
            name = f"{i}-" + "m" * 20_000
            status, parsed = await post(rig, OPENAI, orjson.dumps(body(OPENAI, model=name)))
            assert status in (403, 404), parsed
            assert len(assert_wire_error(OPENAI, parsed)) < 400  # the name is not echoed whole
        async with rig.http.get(rig.url + "/metrics", headers=ADMIN) as resp:
            metrics = (await resp.read()).decode()
        assert "m" * 200 not in metrics
        assert len(metrics) < before + 20_000, len(metrics) - before


async def test_hostile_labels_reach_postgres_without_losing_rows(
    sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Labels the edge refuses still get a record; every good call keeps its record and
    ledger row."""
    async with hostile_gateway(sim_url, monkeypatch) as rig:
        bad = [{"x-sluice-user": "u" * 256}, {"x-sluice-feature": "f" * 5000}]
        calls = [post(rig, OPENAI, orjson.dumps(body(OPENAI)), **h) for h in bad]
        nul = body(OPENAI, metadata={"session_id": "s\x00"}, user="\x00")
        calls += [post(rig, OPENAI, orjson.dumps(nul))]
        calls += [post(rig, OPENAI, orjson.dumps(body(OPENAI, model="x" * 5000)))]
        calls += [post(rig, OPENAI, orjson.dumps(body(OPENAI))) for _ in range(20)]
        results = await asyncio.gather(*calls)
        assert [s for s, _ in results].count(200) == 20
        await asyncio.sleep(1.5)  # the sink and the ledger flush every 0.5 s / 0.05 s
        records = rig.count("SELECT count(*) FROM call_records WHERE kind = 'call'")
        ledger = rig.count("SELECT count(*) FROM sluice_spend_ledger")
        assert records == len(calls)
        assert ledger >= 20


def test_one_bad_row_never_costs_its_batch_on_postgres() -> None:
    """Rows PostgreSQL refuses (too long, NUL) are parked in sluice_dead_letters; the rest
    of the batch is written — records and ledger alike."""

    async def run(url: str) -> None:
        store = RecordStore.open(url)
        dead: list[int] = []
        sink = RecordSink(store, batch_size=100, on_dead_letter=dead.append)
        async with sink:
            for i in range(60):
                r = CallRecord(request_id=f"r{i}", route="chat", model_requested="m")
                if i == 7:
                    r.user_id = "u" * 300  # past VARCHAR(255)
                if i == 33:
                    r.input_preview = "nul \x00 byte"  # PostgreSQL text refuses NUL
                sink.emit(r)
        stats = sink.stats()
        assert (stats.written, stats.dead_lettered, stats.failed_records) == (58, 2, 0)
        assert sum(dead) == 2
        ledger = Ledger(LedgerConfig(store_url=url, flush_interval_s=0.01))
        rows = [
            LedgerRow(
                0.0,
                f"l{i}",
                "acme",
                None,
                None,
                "u\x00" if i == 3 else "u",
                None,
                "m",
                None,
                1,
                1,
                Decimal("0.01"),
            )
            for i in range(10)
        ]
        for row in rows:
            ledger.add(row)
        await ledger.close()
        assert (ledger.written, ledger.dead_lettered, ledger.dropped) == (9, 1, 0)
        store.close()

    with postgres_schema() as url:
        asyncio.run(run(url))
        engine = create_engine(url)
        with engine.connect() as conn:
            got = conn.execute(
                text("SELECT source, request_id, error FROM sluice_dead_letters ORDER BY id")
            ).all()
            kept = conn.execute(text("SELECT count(*) FROM call_records")).scalar_one()
        engine.dispose()
        assert kept == 58
        assert [(s, r) for s, r, _ in got] == [
            ("call_records", "r7"),
            ("call_records", "r33"),
            ("sluice_spend_ledger", "l3"),
        ]
        assert all(e for _, _, e in got)
