"""Provider prompt caching end to end: Sluice adds Anthropic breakpoints, the simulator
caches the prefix, and both front ends report cache reads/writes with cache-priced cost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from sluice import server
from sluice.observe.records import CallRecord
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration

LONG = " ".join(f"clause{i} of the policy" for i in range(400))  # ~2000 estimated tokens


@dataclass
class Gw:
    url: str
    records: list[CallRecord]
    http: aiohttp.ClientSession

    async def metrics(self) -> str:
        async with self.http.get(self.url + "/metrics") as resp:
            return await resp.text()


async def _gateway(sim_url: str, **anthropic: Any) -> tuple[web.AppRunner, Gw]:
    data = gateway_config(sim_url).model_dump()
    data["cache"] = {"exact": {"enabled": False}}  # every call must reach the provider
    data["providers"]["sim-anthropic"].update(anthropic)
    config = type(gateway_config(sim_url)).model_validate(data)
    app = server.create_app(config)
    records: list[CallRecord] = []
    app[server.GATEWAY].recorder.observers.append(records.append)
    runner, port = await server.start_app(app)
    return runner, Gw(f"http://127.0.0.1:{port}", records, aiohttp.ClientSession())


@pytest.fixture
async def gw(sim_url: str) -> AsyncIterator[Gw]:
    runner, g = await _gateway(sim_url)
    yield g
    await g.http.close()
    await runner.cleanup()


@pytest.fixture
async def gw_off(sim_url: str) -> AsyncIterator[Gw]:
    runner, g = await _gateway(sim_url, prompt_caching="off")
    yield g
    await g.http.close()
    await runner.cleanup()


async def test_anthropic_sdk_second_call_reads_the_cache_and_costs_less(gw: Gw) -> None:
    client = AsyncAnthropic(base_url=gw.url, api_key="sk-test", max_retries=0)
    usages = []
    for question in ("What is clause3?", "What is clause9?"):
        msg = await client.messages.create(
            model="claude-sonnet",
            max_tokens=50,
            system=LONG,  # a plain string: the caller set no breakpoint
            messages=[{"role": "user", "content": question}],
        )
        usages.append(msg.usage)
    await client.close()
    first, second = usages
    assert first.cache_creation_input_tokens and first.cache_creation_input_tokens > 1024
    assert first.cache_read_input_tokens == 0
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert second.cache_creation_input_tokens == 0
    cost1, cost2 = (r.cost_usd for r in gw.records)
    assert cost1 is not None and cost2 is not None and cost2 < cost1 / 3
    assert gw.records[1].cost_saved_usd and gw.records[1].cost_saved_usd > 0
    # read / (read + write) over the two calls: 1/2.
    assert 'sluice_prompt_cache_hit_ratio{deployment="sim-claude-sonnet"} 0.5' in (
        await gw.metrics()
    )


async def test_streaming_reports_cache_reads_too(gw: Gw) -> None:
    client = AsyncAnthropic(base_url=gw.url, api_key="sk-test", max_retries=0)
    finals = []
    for question in ("a?", "b?"):
        async with client.messages.stream(
            model="claude-sonnet",
            max_tokens=30,
            system=LONG,
            messages=[{"role": "user", "content": question}],
        ) as stream:
            finals.append(await stream.get_final_message())
    await client.close()
    assert finals[1].usage.cache_read_input_tokens == finals[0].usage.cache_creation_input_tokens
    assert finals[1].usage.cache_read_input_tokens


async def test_openai_sdk_sees_cached_tokens_from_an_anthropic_upstream(gw: Gw) -> None:
    client = AsyncOpenAI(base_url=gw.url + "/v1", api_key="sk-test", max_retries=0)
    results = []
    for question in ("first?", "second?"):
        resp = await client.chat.completions.create(
            model="claude-sonnet",
            messages=[{"role": "system", "content": LONG}, {"role": "user", "content": question}],
        )
        results.append(resp.usage)
    await client.close()
    first, second = results
    assert first is not None and second is not None
    assert first.prompt_tokens_details is not None
    assert first.prompt_tokens_details.cached_tokens == 0
    assert second.prompt_tokens_details is not None
    cached = second.prompt_tokens_details.cached_tokens
    assert cached and cached > 1024
    assert second.prompt_tokens >= cached  # prompt_tokens counts cached ones too


async def test_off_sends_no_breakpoints_and_nothing_is_cached(gw_off: Gw) -> None:
    client = AsyncAnthropic(base_url=gw_off.url, api_key="sk-test", max_retries=0)
    for question in ("x?", "y?"):
        msg = await client.messages.create(
            model="claude-sonnet",
            max_tokens=20,
            system=LONG,
            messages=[{"role": "user", "content": question}],
        )
        assert not msg.usage.cache_read_input_tokens
        assert not msg.usage.cache_creation_input_tokens
    await client.close()


async def test_multi_turn_conversation_reads_the_previous_turn(gw: Gw) -> None:
    """No long system prompt: the repeated conversation prefix is what gets cached."""
    client = AsyncAnthropic(base_url=gw.url, api_key="sk-test", max_retries=0)
    history: list[Any] = [{"role": "user", "content": LONG}]
    reads = []
    for turn in range(3):
        msg = await client.messages.create(model="claude-sonnet", max_tokens=20, messages=history)
        reads.append(msg.usage.cache_read_input_tokens or 0)
        history += [
            {"role": "assistant", "content": msg.content[0].text},  # type: ignore[union-attr]
            {"role": "user", "content": f"and turn {turn}?"},
        ]
    await client.close()
    assert reads[0] == 0 and reads[1] == 0  # turn 2 writes the prefix turn 1 sent
    assert reads[2] > 1024  # turn 3 reads it


async def test_openai_upstream_prefix_is_cached_automatically(gw: Gw) -> None:
    """OpenAI caches byte-identical prefixes on its own: the encoder keeps them identical."""
    client = AsyncOpenAI(base_url=gw.url + "/v1", api_key="sk-test", max_retries=0)
    cached = []
    for i, stream in enumerate((False, False, True)):
        kwargs: dict[str, Any] = {"user": f"user-{i}"}  # per-request noise after the prompt
        messages: Any = [{"role": "system", "content": LONG}, {"role": "user", "content": f"q{i}"}]
        if stream:
            chunks = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **kwargs,
            )
            usage = None
            async for chunk in chunks:
                usage = chunk.usage or usage
        else:
            usage = (
                await client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, **kwargs
                )
            ).usage
        assert usage is not None and usage.prompt_tokens_details is not None
        cached.append(usage.prompt_tokens_details.cached_tokens)
    await client.close()
    assert cached[0] == 0 and cached[1] and cached[1] >= 1024 and cached[2] == cached[1]
