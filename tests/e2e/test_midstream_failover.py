"""Mid-stream failover (issue 14 §4): a stream cut after its first byte continues on the
fallback as the same client stream — no repeated or lost text — and both attempts are
recorded and charged. Official SDKs; one simulator cuts every stream, another is healthy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from sluice import server
from sluice.config import parse_config
from sluice.observe.records import CallRecord
from sluice.observe.store import RecordStore
from sluice.reliability.midstream import CONTINUE_PROMPT
from sluice.sim.config import SimConfig
from sluice.sim.server import start as start_sim
from sluice.tokens import count_text

pytestmark = pytest.mark.integration

CONFIG = """
governance: {{auth: {{enabled: false}}}}
cache: {{exact: {{enabled: false}}, semantic: {{enabled: false}}}}
observability: {{records: {{store_url: "{db}"}}}}
providers:
  cut-openai: {{kind: openai, api_base: "{cut}/v1"}}
  cut-anthropic: {{kind: anthropic, api_base: "{cut}"}}
  ok-openai: {{kind: openai, api_base: "{ok}/v1"}}
  ok-anthropic: {{kind: anthropic, api_base: "{ok}"}}
deployments:
  - {{id: p-oa, provider: cut-openai, model: gpt-4o-mini, serves: [chat-oa, chat-off]}}
  - {{id: p-an, provider: cut-anthropic, model: claude-3-5-haiku-latest, serves: [chat-an]}}
  - {{id: f-an, provider: ok-anthropic, model: claude-3-5-haiku-latest, serves: [fb-an]}}
  - {{id: f-oa, provider: ok-openai, model: gpt-4o-mini, serves: [fb-oa]}}
models:
  chat-oa: {{fallbacks: [fb-an]}}
  chat-an: {{fallbacks: [fb-oa]}}
  chat-off: {{fallbacks: [fb-an], midstream_failover: false}}
"""
MAX_TOKENS = 60
PROMPT = "Tell me about estuaries"


@dataclass
class Rig:
    cut: str
    ok: str
    gateway: str
    db: str
    http: aiohttp.ClientSession

    async def answer(self, url: str, wire: str, body: dict[str, Any]) -> str:
        """What a simulator answers, asked directly (no fault)."""
        path = "/v1/chat/completions" if wire == "openai" else "/v1/messages"
        headers = {"x-sim-fault": "none", "anthropic-version": "2023-06-01"}
        async with self.http.post(url + path, json=body, headers=headers) as r:
            data = await r.json()
        if wire == "openai":
            return str(data["choices"][0]["message"]["content"])
        return "".join(b["text"] for b in data["content"] if b["type"] == "text")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    cut_runner, cut_port = await start_sim(SimConfig(port=0, fault_rate=1.0, faults=["cut"]))
    ok_runner, ok_port = await start_sim(SimConfig(port=0))
    cut, ok = f"http://127.0.0.1:{cut_port}", f"http://127.0.0.1:{ok_port}"
    db = f"sqlite:///{tmp_path / 'records.db'}"
    runner, port = await server.start(parse_config(CONFIG.format(cut=cut, ok=ok, db=db)))
    async with aiohttp.ClientSession() as http:
        yield Rig(cut, ok, f"http://127.0.0.1:{port}", db, http)
    await runner.cleanup()
    await cut_runner.cleanup()
    await ok_runner.cleanup()


def split_at_partial(text: str, first: str) -> str:
    """The longest prefix of `first` (the cut upstream's answer) the client's text starts
    with: what was delivered before the cut."""
    size = 0
    while size < len(first) and size < len(text) and text[size] == first[size]:
        size += 1
    return first[:size]


async def openai_stream(rig: Rig, model: str) -> tuple[str, str | None, int]:
    async with openai.AsyncOpenAI(base_url=rig.gateway + "/v1", api_key="x", max_retries=0) as c:
        stream = await c.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, finish, output = "", None, 0
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage is not None:
                output = chunk.usage.completion_tokens
    return text, finish, output


async def test_openai_client_stream_cut_continues_on_anthropic_by_prefill(rig: Rig) -> None:
    text, finish, output = await openai_stream(rig, "chat-oa")
    assert finish == "stop"
    sims = (await stats(rig, rig.cut), await stats(rig, rig.ok))
    first = await rig.answer(
        rig.cut,
        "openai",
        {"model": "gpt-4o-mini", "max_tokens": MAX_TOKENS,
         "messages": [{"role": "user", "content": PROMPT}]},
    )  # fmt: skip
    partial = split_at_partial(text, first)
    assert 0 < len(partial) < len(first)  # the cut came mid-answer
    prefill = partial.rstrip()
    rest = await rig.answer(
        rig.ok,
        "anthropic",
        {
            "model": "claude-3-5-haiku-latest",
            "max_tokens": max(MAX_TOKENS - count_text(partial), 16),
            "messages": [
                {"role": "user", "content": PROMPT},
                {"role": "assistant", "content": prefill},
            ],
        },
    )
    rest = rest.lstrip() if prefill != partial else rest
    assert text == partial + rest  # nothing repeated, nothing lost
    call = await assert_both_attempts_charged(rig, *sims)
    assert output == call.output_tokens  # the usage chunk shows what both attempts cost


async def test_anthropic_client_stream_cut_continues_on_openai_with_instruction(
    rig: Rig,
) -> None:
    async with anthropic.AsyncAnthropic(base_url=rig.gateway, api_key="x", max_retries=0) as c:
        stream = await c.messages.create(
            model="chat-an",
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=MAX_TOKENS,
            stream=True,
        )
        text, stop = "", None
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
            elif event.type == "message_delta":
                stop = event.delta.stop_reason
    assert stop == "end_turn"
    sims = (await stats(rig, rig.cut), await stats(rig, rig.ok))
    first = await rig.answer(
        rig.cut,
        "anthropic",
        {"model": "claude-3-5-haiku-latest", "max_tokens": MAX_TOKENS,
         "messages": [{"role": "user", "content": PROMPT}]},
    )  # fmt: skip
    partial = split_at_partial(text, first)
    assert 0 < len(partial) < len(first)
    rest = await rig.answer(
        rig.ok,
        "openai",
        {
            "model": "gpt-4o-mini",
            "max_tokens": max(MAX_TOKENS - count_text(partial), 16),
            "messages": [
                {"role": "user", "content": PROMPT},
                {"role": "assistant", "content": partial},
                {"role": "user", "content": CONTINUE_PROMPT},
            ],
        },
    )
    assert text == partial + rest
    await assert_both_attempts_charged(rig, *sims)


async def assert_both_attempts_charged(
    rig: Rig, cut: dict[str, Any], ok: dict[str, Any]
) -> CallRecord:
    assert cut["requests_total"] == 1 and ok["requests_total"] == 1  # one call each
    delivered = sum(m["output_tokens"] for m in cut["by_model"].values())
    continued = sum(m["output_tokens"] for m in ok["by_model"].values())
    await stop_gateway_sink(rig)
    store = RecordStore.open(rig.db)
    try:
        records = store.query()
    finally:
        store.close()
    [call] = [r for r in records if r.kind == "call"]
    attempts = [r for r in records if r.kind == "attempt"]
    assert call.status == 200 and call.attempts == 2 and len(attempts) == 2
    assert call.usage_source == "estimated"  # the cut attempt's part is an estimate
    assert call.output_tokens >= 0.8 * delivered + continued
    assert call.cost_usd is not None and call.cost_usd > 0
    assert sorted(a.status for a in attempts)[-1] >= 500  # the cut attempt, marked failed
    return call


async def stats(rig: Rig, url: str) -> dict[str, Any]:
    async with rig.http.get(url + "/sim/stats") as r:
        data: dict[str, Any] = await r.json()
    return data


async def stop_gateway_sink(rig: Rig) -> None:
    """Records are written in batches: wait until the call's record is in the store."""
    import asyncio

    for _ in range(100):
        store = RecordStore.open(rig.db)
        try:
            if any(r.kind == "call" for r in store.query()):
                return
        finally:
            store.close()
        await asyncio.sleep(0.05)


async def test_opted_out_model_ends_the_cut_stream_with_an_error_event(rig: Rig) -> None:
    body = {
        "model": "chat-off",
        "max_tokens": MAX_TOKENS,
        "stream": True,
        "messages": [{"role": "user", "content": PROMPT}],
    }
    async with rig.http.post(rig.gateway + "/v1/chat/completions", json=body) as r:
        raw = await r.text()
    assert r.status == 200 and '"error"' in raw and "[DONE]" not in raw
    assert (await stats(rig, rig.ok))["requests_total"] == 0
