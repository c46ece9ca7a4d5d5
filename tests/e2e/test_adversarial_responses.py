"""`POST /v1/responses` reads its body once before the chat handler (to load the stored
conversation): that read must hold the same bounds as every other body read (Content-Encoding,
the body timeout), or a gzip-encoded continuation silently loses its conversation and a slow
body holds the connection past the timeout."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from sluice.config import SluiceConfig
from tests.conftest import gateway_config
from tests.governance_rig import gateway

pytestmark = pytest.mark.e2e


@pytest.fixture
async def base(sim_url: str) -> AsyncIterator[str]:
    data = gateway_config(sim_url).model_dump()
    data["server"]["edge"]["body_timeout_s"] = 1.0
    async with gateway(SluiceConfig.model_validate(data)) as (url, _):
        yield url


async def test_a_gzip_encoded_continuation_keeps_its_conversation(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        first = {"model": "gpt-4o-mini", "input": "remember the word " + "zebra " * 200}
        async with http.post(base + "/v1/responses", json=first) as resp:
            assert resp.status == 200
            prior = await resp.json()
        body = {"model": "gpt-4o-mini", "input": "which word?", "previous_response_id": prior["id"]}
        headers = {"content-type": "application/json", "content-encoding": "gzip"}
        data = gzip.compress(orjson.dumps(body))
        async with http.post(base + "/v1/responses", data=data, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            answer = await resp.json()
    assert answer["previous_response_id"] == prior["id"]
    assert answer["usage"]["input_tokens"] > prior["usage"]["input_tokens"]


async def test_a_slow_body_is_cut_at_the_body_timeout(base: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = (
        "POST /v1/responses HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        "content-length: 100\r\n\r\n{"
    )
    started = time.monotonic()
    writer.write(head.encode())
    await writer.drain()
    try:
        status = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    assert status.split()[1] == b"408", status
    assert time.monotonic() - started < 5
