"""`client.embeddings.create` (forwarded to an OpenAI-kind deployment, or the local MiniLM
model) and the anthropic SDK's `messages.count_tokens`, against a real gateway."""

from __future__ import annotations

import asyncio
import base64
import math
import struct
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from sluice import server
from sluice.config import SluiceConfig
from sluice.context.tokens import count_request
from sluice.observe.records import CallRecord
from sluice.observe.store import RecordStore
from sluice.sim.embeddings import vector
from sluice.types import CallMeta
from sluice.wire.anthropic.request import decode_request
from tests.conftest import gateway_config

pytestmark = pytest.mark.e2e

EMBED = "text-embedding-3-small"


class Rig:
    def __init__(self, url: str, db: str) -> None:
        self.url, self.db = url, db
        self.oai = AsyncOpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
        self.ant = AsyncAnthropic(base_url=url, api_key="sk-test", max_retries=0)

    async def close(self) -> None:
        await self.oai.close()
        await self.ant.close()


@pytest.fixture
async def rig(sim_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    db = f"sqlite:///{tmp_path / 'sluice.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    data["deployments"].append(
        {
            "id": "sim-embed-small",
            "provider": "sim-openai",
            "model": EMBED,
            "serves": [EMBED],
            "price": {"input": 0.02, "output": 0},
        }
    )
    runner, port = await server.start(SluiceConfig.model_validate(data))
    rig = Rig(f"http://127.0.0.1:{port}", db)
    yield rig
    await rig.close()
    await runner.cleanup()


async def records_of(db: str, request_ids: set[str]) -> dict[str, CallRecord]:
    store = RecordStore.open(db)
    found: dict[str, CallRecord] = {}
    try:
        for _ in range(100):  # written by the background sink
            found = {r.request_id: r for r in store.query() if r.request_id in request_ids}
            if len(found) == len(request_ids):
                return found
            await asyncio.sleep(0.1)
    finally:
        store.close()
    raise AssertionError(f"records missing: {request_ids - set(found)}")


async def test_forwarded_embeddings_float_and_base64_are_recorded_and_priced(rig: Rig) -> None:
    raw = await rig.oai.embeddings.with_raw_response.create(
        model=EMBED, input=["the river flows", "a quiet lake"]
    )  # the SDK asks for base64 by default and decodes it
    sdk = raw.parse()
    assert raw.headers["x-sluice-deployment"] == "sim-embed-small"
    assert sdk.model == EMBED and [d.index for d in sdk.data] == [0, 1]
    assert sdk.data[0].embedding == pytest.approx(vector("the river flows", 256), abs=1e-6)
    floats = await rig.oai.embeddings.create(
        model=EMBED, input="the river flows", encoding_format="float", dimensions=32
    )
    assert floats.data[0].embedding == pytest.approx(vector("the river flows", 32))
    async with aiohttp.ClientSession() as http:
        body = {"model": EMBED, "input": "a quiet lake", "encoding_format": "base64"}
        async with http.post(rig.url + "/v1/embeddings", json=body) as resp:
            packed = base64.b64decode((await resp.json())["data"][0]["embedding"])
    assert list(struct.unpack("<256f", packed)) == pytest.approx(vector("a quiet lake", 256))
    record = (await records_of(rig.db, {raw.headers["x-sluice-request-id"]}))[
        raw.headers["x-sluice-request-id"]
    ]
    assert record.deployment == "sim-embed-small" and record.status == 200
    assert record.input_tokens == sdk.usage.prompt_tokens > 0
    assert record.cost_usd == Decimal("0.02") * sdk.usage.prompt_tokens / 1_000_000


async def test_local_minilm_embeddings(rig: Rig) -> None:
    raw = await rig.oai.embeddings.with_raw_response.create(
        model="local-minilm", input=["How do I reset my password?", "password reset steps", "pizza"]
    )
    out = raw.parse()
    vectors = [d.embedding for d in out.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-4)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2])  # meaning, not letters
    record = (await records_of(rig.db, {raw.headers["x-sluice-request-id"]}))[
        raw.headers["x-sluice-request-id"]
    ]
    assert record.model_requested == "local-minilm" and record.cost_usd == 0


async def test_embeddings_errors_are_openai_shaped(rig: Rig) -> None:
    with pytest.raises(openai.BadRequestError) as anthropic_only:
        await rig.oai.embeddings.create(model="claude-haiku", input="x")
    assert anthropic_only.value.code == "model_not_embeddings"
    with pytest.raises(openai.NotFoundError):
        await rig.oai.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError) as dims:
        await rig.oai.embeddings.create(model="local-minilm", input="x", dimensions=64)
    assert dims.value.param == "dimensions"
    bad: Any = {"model": EMBED, "input": [1.5]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(rig.url + "/v1/embeddings", json=bad) as resp,
    ):
        assert resp.status == 400
        assert (await resp.json())["error"]["param"] == "input"


async def test_count_tokens_with_the_anthropic_sdk(rig: Rig) -> None:
    messages: Any = [{"role": "user", "content": "What is the capital of France?"}]
    tools: Any = [{"name": "lookup", "description": "Find", "input_schema": {"type": "object"}}]
    claude = await rig.ant.messages.with_raw_response.count_tokens(
        model="claude-haiku", system="Be brief.", messages=messages, tools=tools
    )
    counted = await claude.parse()
    assert claude.headers["x-sluice-token-count"] == "estimate"  # no offline Claude tokenizer
    body = {"model": "claude-haiku", "max_tokens": 1, "system": "Be brief.", "messages": messages}
    expected = count_request(
        decode_request({**body, "tools": tools}, CallMeta()), "claude-3-5-haiku-latest"
    )
    assert counted.input_tokens == expected.tokens
    gpt = await rig.ant.messages.with_raw_response.count_tokens(
        model="gpt-4o-mini", messages=messages
    )
    assert gpt.headers["x-sluice-token-count"] == "exact"  # tiktoken's own encoding
    exact = count_request(
        decode_request({**body, "model": "gpt-4o-mini", "system": []}, CallMeta()), "gpt-4o-mini"
    )
    assert (await gpt.parse()).input_tokens == exact.tokens
    with pytest.raises(Exception) as unknown:
        await rig.ant.messages.count_tokens(model="no-such-model", messages=messages)
    assert getattr(unknown.value, "status_code", None) == 404
    assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[attr-defined]
