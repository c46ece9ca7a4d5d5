"""`/v1/embeddings` and `/v1/messages/count_tokens` bodies get the edge's bounds (nesting
depth, Content-Encoding) like the chat endpoints: a deeply nested unknown field in an
embeddings body was forwarded upstream and failed re-encoding as a 500."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from tests.conftest import gateway_config
from tests.governance_rig import gateway

pytestmark = pytest.mark.e2e


@pytest.fixture
async def base(sim_url: str) -> AsyncIterator[str]:
    async with gateway(gateway_config(sim_url)) as (url, _):
        yield url


@pytest.mark.parametrize("path", ["/v1/embeddings", "/v1/messages/count_tokens"])
async def test_deep_and_gzip_bodies(base: str, path: str) -> None:
    deep = b'{"model":"gpt-4o-mini","input":"x","extra":' + b"[" * 300 + b"]" * 300 + b"}"
    body = {"model": "gpt-4o-mini", "input": "x", "messages": [{"role": "user", "content": "x"}]}
    async with aiohttp.ClientSession() as http:
        async with http.post(base + path, data=deep) as resp:
            assert resp.status == 400, await resp.text()
            assert "deeper" in await resp.text()
        headers = {"content-type": "application/json", "content-encoding": "gzip"}
        data = gzip.compress(orjson.dumps(body))
        async with http.post(base + path, data=data, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
