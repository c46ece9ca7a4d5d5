"""A stream the client drops is charged for what it delivered (issue 14 §1).

Official SDKs over loopback: the client reads ~90% of a streamed answer and closes the
connection. The call's record, its budget and its TPM must carry the delivered tokens
(`usage_source: estimated`), not 0 — ten such calls once bypassed a hard budget entirely.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from sluice import server
from sluice.config import SluiceConfig
from sluice.governance.redis_counters import RedisCounters
from sluice.observe.records import CallRecord
from sluice.observe.store import RecordStore
from sluice.tokens import count_text
from tests.conftest import gateway_config
from tests.integration.test_limits_redis import REDIS_URL

pytestmark = pytest.mark.integration

OUT = 300  # tokens the simulator streams per answer
SIM = {"x-sim-output-tokens": str(OUT), "x-sim-tps": "600"}


@asynccontextmanager
async def gateway(sim_url: str, db: str, limits: dict[str, Any]) -> AsyncIterator[str]:
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    data["cache"]["semantic"]["enabled"] = False  # no embedding model to load
    data["limits"] = {"enabled": True, **limits}
    runner, port = await server.start(SluiceConfig.model_validate(data))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()  # flushes the record sink


async def drop_openai(url: str, prompt: str, after: int) -> int:
    """Read about `after` tokens of a streamed answer, then close: what the client saw."""
    seen = 0
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=OUT,
            stream=True,
            extra_headers=SIM,
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                seen += count_text(chunk.choices[0].delta.content)
            if seen >= after:
                break
        await stream.close()
    return seen


async def drop_anthropic(url: str, prompt: str, after: int) -> int:
    seen = 0
    async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0) as client:
        stream = await client.messages.create(
            model="claude-haiku",
            messages=[{"role": "user", "content": prompt}],
            max_tokens=OUT,
            stream=True,
            extra_headers=SIM,
        )
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                seen += count_text(event.delta.text)
            if seen >= after:
                break
        await stream.close()
    return seen


async def settled_sim(http: aiohttp.ClientSession, sim_url: str) -> dict[str, Any]:
    """The simulator's stats once every stream it served has ended."""
    deadline = time.monotonic() + 5
    while True:
        async with http.get(sim_url + "/sim/stats") as resp:
            stats: dict[str, Any] = await resp.json()
        if stats["open_streams"] == 0 or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.02)


def calls(db: str) -> list[CallRecord]:
    store = RecordStore.open(db)
    try:
        return [r for r in store.query() if r.kind == "call"]
    finally:
        store.close()


@pytest.mark.parametrize(
    ("drop", "upstream"),
    [(drop_openai, "gpt-4o-mini"), (drop_anthropic, "claude-3-5-haiku-latest")],
    ids=["openai", "anthropic"],
)
async def test_a_dropped_stream_is_charged_what_it_delivered(
    sim_url: str, tmp_path: Path, drop: Any, upstream: str
) -> None:
    db = f"sqlite:///{tmp_path / 'records.db'}"
    budget = {"budgets": {"tenants": {"default": [{"period": "total", "usd": 50}]}}}
    async with aiohttp.ClientSession() as http, gateway(sim_url, db, budget) as url:
        seen = await drop(url, "Tell me about rivers", int(OUT * 0.9))
        sim = await settled_sim(http, sim_url)
        await asyncio.sleep(0.2)  # the gateway settles as the disconnect reaches it
        async with http.get(url + "/v1/sluice/usage") as resp:
            spent = (await resp.json())["budgets"][0]["spent"]
    assert seen >= OUT * 0.85
    delivered = sim["by_model"][upstream]["output_tokens"]
    assert 0 < delivered <= OUT
    [record] = calls(db)
    assert record.status == 499 and record.error_type == "client_disconnected"
    assert record.usage_source == "estimated"
    assert record.output_tokens >= 0.8 * delivered, (record.output_tokens, delivered)
    assert record.input_tokens >= 0.8 * sim["by_model"][upstream]["input_tokens"]
    assert record.cost_usd is not None and record.cost_usd > 0
    assert spent == pytest.approx(float(record.cost_usd), rel=1e-6)


async def test_a_completed_stream_keeps_the_providers_usage(sim_url: str, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'records.db'}"
    async with gateway(sim_url, db, {}) as url:
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Tell me about lakes"}],
            max_tokens=50,
            stream=True,
        )
        async for _ in stream:
            pass
        await client.close()
    [record] = calls(db)
    assert record.status == 200 and record.usage_source == "provider"
    assert record.output_tokens > 0


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_dropped_streams_cannot_bypass_a_hard_budget(
    sim_url: str, tmp_path: Path, backend: str
) -> None:
    """Each dropped stream costs ~$0.00016; reserving one costs ~$0.00018: a $0.001 total
    budget admits about five. Before the fix all ten were admitted at $0. With Redis too:
    the settlement runs in the task the disconnect cancelled."""
    db = f"sqlite:///{tmp_path / 'records.db'}"
    budget: dict[str, Any] = {
        "budgets": {"tenants": {"default": [{"period": "total", "usd": 0.001}]}}
    }
    if backend == "redis":
        prefix = f"sluice-test:dropped:{uuid.uuid4().hex}:"
        budget.update(backend="redis", redis_url=REDIS_URL, key_prefix=prefix)
    admitted, refused = 0, 0
    async with aiohttp.ClientSession() as http, gateway(sim_url, db, budget) as url:
        for i in range(10):
            try:
                await drop_openai(url, f"Tell me about river number {i}", int(OUT * 0.9))
                admitted += 1
            except openai.RateLimitError as err:
                assert err.code == "budget_exceeded"
                refused += 1
            await settled_sim(http, sim_url)
            await asyncio.sleep(0.1)  # let the gateway settle the dropped call
        client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
        async with client:
            with pytest.raises(openai.RateLimitError) as later:
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "one more"}]
                )
        assert later.value.code == "budget_exceeded"
        async with http.get(url + "/v1/sluice/usage") as resp:
            spent = Decimal(str((await resp.json())["budgets"][0]["spent"]))
    if backend == "redis":
        probe = RedisCounters(REDIS_URL, budget["key_prefix"])
        await probe.clear()
        await probe.close()
    assert 3 <= admitted <= 6 and refused == 10 - admitted
    assert spent >= Decimal("0.0007")


async def test_a_stream_cut_by_the_upstream_is_charged_what_it_delivered(
    sim_url: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'records.db'}"
    async with aiohttp.ClientSession() as http, gateway(sim_url, db, {}) as url:
        async with http.post(
            url + "/v1/chat/completions",
            json={
                "model": "gpt-4o-mini",
                "max_tokens": OUT,
                "stream": True,
                "messages": [{"role": "user", "content": "Tell me about deltas"}],
            },
            headers={**SIM, "x-sim-fault": "cut"},
        ) as resp:
            body = await resp.text()
        sim = await settled_sim(http, sim_url)
    assert resp.status == 200 and '"error"' in body  # ended with the API's error event
    delivered = sim["by_model"]["gpt-4o-mini"]["output_tokens"]
    [record] = calls(db)
    assert record.status >= 500 and record.usage_source == "estimated"
    assert record.output_tokens >= 0.8 * delivered > 0, (record.output_tokens, delivered)


async def test_a_reset_at_write_eof_is_a_clean_200(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The client closes right at the end: the answer was delivered in full, so it is a 200
    record, and nothing is logged as a traceback."""
    from aiohttp import web
    from aiohttp.client_exceptions import ClientConnectionResetError

    real = web.StreamResponse.write_eof

    async def reset(self: web.StreamResponse, data: bytes = b"") -> None:
        if self.content_type == "text/event-stream":
            raise ClientConnectionResetError("Cannot write to closing transport")
        await real(self, data)

    monkeypatch.setattr(web.StreamResponse, "write_eof", reset)
    db = f"sqlite:///{tmp_path / 'records.db'}"
    async with aiohttp.ClientSession() as http, gateway(sim_url, db, {}) as url:
        body = {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "Tell me about springs"}],
        }
        async with http.post(url + "/v1/chat/completions", json=body) as resp:
            raw = await resp.content.read(1 << 20)
        assert b"[DONE]" in raw
    [record] = calls(db)
    assert record.status == 200 and record.error_type is None
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]


async def test_a_stream_cut_at_the_drain_timeout_is_charged(sim_url: str, tmp_path: Path) -> None:
    """Shutdown waits `drain_timeout_s` for in-flight streams, then cancels them: what they
    delivered until then is settled and recorded."""
    from aiohttp import web

    db = f"sqlite:///{tmp_path / 'records.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    data["cache"]["semantic"]["enabled"] = False
    app = server.create_app(SluiceConfig.model_validate(data))
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    body = {
        "model": "gpt-4o-mini",
        "max_tokens": 200,
        "stream": True,
        "messages": [{"role": "user", "content": "a slow answer"}],
    }
    slow = {"x-sim-output-tokens": "200", "x-sim-tps": "40"}  # ~5 s of streaming
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/chat/completions", json=body, headers=slow) as resp:
            await resp.content.readany()
            await asyncio.sleep(0.5)
            await runner.cleanup()  # drain 0.5 s, then the stream is cut
            with contextlib.suppress(aiohttp.ClientError):
                await resp.read()
        sim = await settled_sim(http, sim_url)
    delivered = sim["by_model"]["gpt-4o-mini"]["output_tokens"]
    [record] = calls(db)
    assert record.usage_source == "estimated" and record.status >= 400
    assert record.output_tokens >= 0.8 * delivered > 0, (record.output_tokens, delivered)
