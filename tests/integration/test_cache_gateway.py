"""Exact cache and idempotency in a real gateway, with the simulator and the openai SDK.

The stages come from the gateway's `cache:` config, as a user sets them up. Every test runs
with the memory backend and with Redis (unique key prefix, cleared after).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from sluice import server
from sluice.cache.backends import RedisBackend
from sluice.cache.exact import ExactCacheStage
from sluice.cache.idempotency import IdempotencyStage
from sluice.config import SluiceConfig
from tests.conftest import gateway_config
from tests.integration.test_cache_redis import redis_backend_or_skip

pytestmark = pytest.mark.integration

MESSAGES: Any = [{"role": "user", "content": "Tell me about rivers"}]


@dataclass
class Cached:
    oai: AsyncOpenAI
    sim_url: str
    http: aiohttp.ClientSession
    cache: ExactCacheStage
    idem: IdempotencyStage

    async def sim_requests(self) -> int:
        async with self.http.get(self.sim_url + "/sim/stats") as resp:
            return int((await resp.json())["requests_total"])


@pytest.fixture(params=["memory", "redis"])
async def cache_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The `cache:` config section under test: in-process, or shared through Redis."""
    if request.param == "memory":
        return {"backend": "memory"}
    prefix = f"sluice-test:{uuid.uuid4().hex}:"
    probe = await redis_backend_or_skip(prefix)
    await probe.close()
    return {"backend": "redis", "key_prefix": prefix}


@pytest.fixture
async def cached(sim_url: str, cache_config: dict[str, Any]) -> AsyncIterator[Cached]:
    data = gateway_config(sim_url).model_dump()
    data["cache"] = cache_config
    config = SluiceConfig.model_validate(data)
    app = server.create_app(config)  # the cache stages come from the config
    gateway = app[server.GATEWAY]
    idem = next(s for s in gateway.stages if isinstance(s, IdempotencyStage))
    cache = next(s for s in gateway.stages if isinstance(s, ExactCacheStage))
    runner, port = await server.start_app(app)
    oai = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    async with aiohttp.ClientSession() as http:
        yield Cached(oai, sim_url, http, cache, idem)
    await oai.close()
    if isinstance(gateway.cache_backend, RedisBackend):
        await gateway.cache_backend.clear()
    await runner.cleanup()


# --- exact cache ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku"])
async def test_exact_hit_skips_upstream(cached: Cached, model: str) -> None:
    async def ask() -> Any:
        return await cached.oai.chat.completions.with_raw_response.create(
            model=model, messages=MESSAGES, temperature=0, max_tokens=40
        )

    first = await ask()
    assert first.headers["x-sluice-cache"] == "miss"
    before = await cached.sim_requests()
    second = await ask()
    assert await cached.sim_requests() == before
    assert second.headers["x-sluice-cache"] == "exact"
    assert int(second.headers["x-sluice-cache-age"]) >= 0
    a, b = first.parse(), second.parse()
    assert b.id == a.id
    assert b.choices[0].message.content == a.choices[0].message.content
    assert (b.choices[0].message.content or "").startswith("[simulated]")
    assert b.usage == a.usage
    assert cached.cache.stats.hits == 1


async def test_nondeterministic_request_bypasses(cached: Cached) -> None:
    before = await cached.sim_requests()
    for _ in range(2):
        raw = await cached.oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, max_tokens=20
        )
        assert raw.headers["x-sluice-cache"] == "bypass"
    assert await cached.sim_requests() == before + 2


async def test_no_cache_header_goes_upstream_and_refreshes(cached: Cached) -> None:
    kwargs: Any = {"model": "gpt-4o-mini", "messages": MESSAGES, "temperature": 0}
    await cached.oai.chat.completions.create(**kwargs)
    before = await cached.sim_requests()
    raw = await cached.oai.chat.completions.with_raw_response.create(
        **kwargs, extra_headers={"x-sluice-cache": "no-cache"}
    )
    assert raw.headers["x-sluice-cache"] == "miss"
    assert await cached.sim_requests() == before + 1
    again = await cached.oai.chat.completions.create(**kwargs)
    assert again.id == raw.parse().id


async def _stream_text(cached: Cached, **extra: Any) -> tuple[dict[str, str], str, Any, Any]:
    raw = await cached.oai.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        temperature=0,
        max_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
        **extra,
    )
    text, finish, usage, ids = "", None, None, set()
    async for chunk in raw.parse():
        ids.add(chunk.id)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    assert len(ids) == 1
    assert finish == "stop"
    return dict(raw.headers), text, usage, ids.pop()


async def test_streaming_hit_replays_as_sse(cached: Cached) -> None:
    headers1, text1, usage1, id1 = await _stream_text(cached)
    assert headers1["x-sluice-cache"] == "miss"
    before = await cached.sim_requests()
    headers2, text2, usage2, id2 = await _stream_text(cached)
    assert await cached.sim_requests() == before
    assert headers2["x-sluice-cache"] == "exact"
    assert headers2["content-type"].startswith("text/event-stream")
    assert (text2, usage2, id2) == (text1, usage1, id1)
    assert text1.startswith("[simulated]")
    # The streamed answer also serves the same request without streaming.
    plain = await cached.oai.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, temperature=0, max_tokens=40
    )
    assert plain.choices[0].message.content == text1
    assert await cached.sim_requests() == before


# --- idempotency ----------------------------------------------------------------------


def _idem(key: str) -> dict[str, str]:
    return {"x-sluice-idempotency-key": key}


async def test_idempotent_sequential_retry_is_replayed(cached: Cached) -> None:
    key = uuid.uuid4().hex
    before = await cached.sim_requests()
    kwargs: Any = {"model": "claude-haiku", "messages": MESSAGES, "max_tokens": 40}
    first = await cached.oai.chat.completions.with_raw_response.create(
        **kwargs, extra_headers=_idem(key)
    )
    second = await cached.oai.chat.completions.with_raw_response.create(
        **kwargs, extra_headers=_idem(key)
    )
    assert await cached.sim_requests() == before + 1
    assert "x-sluice-idempotent-replay" not in first.headers
    assert second.headers["x-sluice-idempotent-replay"] == "true"
    assert first.headers["x-sluice-cache"] == "bypass"  # not cached: temperature unset
    a, b = first.parse(), second.parse()
    assert (b.id, b.choices[0].message.content, b.usage) == (
        a.id,
        a.choices[0].message.content,
        a.usage,
    )


async def test_idempotent_concurrent_duplicates_call_upstream_once(cached: Cached) -> None:
    key = uuid.uuid4().hex
    before = await cached.sim_requests()
    answers = await asyncio.gather(
        *(
            cached.oai.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, max_tokens=60, extra_headers=_idem(key)
            )
            for _ in range(5)
        )
    )
    assert await cached.sim_requests() == before + 1
    assert len({a.id for a in answers}) == 1
    assert len({a.choices[0].message.content for a in answers}) == 1
    assert cached.idem.stats.first == 1 and cached.idem.stats.replays == 4


async def test_idempotent_streamed_original_replays_as_stream(cached: Cached) -> None:
    key = uuid.uuid4().hex
    before = await cached.sim_requests()
    headers1, text1, usage1, id1 = await _stream_text(cached, extra_headers=_idem(key))
    headers2, text2, usage2, id2 = await _stream_text(
        cached, extra_headers={**_idem(key), "x-sluice-cache": "no-store"}
    )
    assert await cached.sim_requests() == before + 1
    assert "x-sluice-idempotent-replay" not in headers1
    assert headers2["x-sluice-idempotent-replay"] == "true"
    assert (text2, usage2, id2) == (text1, usage1, id1)


async def test_idempotency_key_reused_with_another_body_is_422(cached: Cached) -> None:
    key = uuid.uuid4().hex
    await cached.oai.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=_idem(key)
    )
    with pytest.raises(openai.UnprocessableEntityError) as info:
        await cached.oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "something else"}],
            extra_headers=_idem(key),
        )
    assert info.value.status_code == 422
    body: Any = info.value.body
    assert body["code"] == "idempotency_key_reused"
    assert "different request body" in body["message"]
