"""Every upstream send is counted: an upstream that hangs up on a kept-alive connection as
the request goes out costs a visible attempt (x-sluice-attempts, the call record), on both
transports, where the lean pool used to send the POST again unseen. The official SDK is the
client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from openai import AsyncOpenAI

from sluice import server
from sluice.config import parse_config
from sluice.observe.store import RecordStore
from tests.unit.scripted_http import serve

pytestmark = pytest.mark.integration

ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "pong"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
)
CONFIG = """
governance: {{auth: {{enabled: false}}}}
cache: {{exact: {{enabled: false}}}}
observability: {{records: {{store_url: "sqlite:///{db}"}}}}
providers:
  up: {{kind: openai, api_base: "{base}/v1", transport: {transport}}}
deployments:
  - {{id: only, provider: up, model: gpt-4o-mini}}
reliability:
  retry: {{max_retries: 2, base_s: 0.01, cap_s: 0.05}}
"""


@pytest.mark.parametrize("transport", ["aiohttp", "lean"])
async def test_a_dropped_keep_alive_send_is_a_counted_attempt(
    transport: str, tmp_path: Path
) -> None:
    answered: list[asyncio.StreamWriter] = []  # kept alive: ids never reused

    async def first_only(_: bytes, writer: asyncio.StreamWriter) -> bool:
        if any(w is writer for w in answered):
            return False  # the second request on a connection: hang up without a word
        answered.append(writer)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        writer.write(head % len(ANSWER) + ANSWER)
        await writer.drain()
        return True

    async with serve(first_only) as (url, upstream):
        base = url.split("/v1/")[0]
        db = tmp_path / "records.db"
        config = parse_config(CONFIG.format(db=db, base=base, transport=transport))
        runner, port = await server.start(config)
        try:
            client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x")
            first = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "a"}]
            )
            second = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "b"}]
            )
            await client.close()
        finally:
            await runner.cleanup()  # flushes the records
    assert first.headers["x-sluice-attempts"] == "1"
    assert second.headers["x-sluice-attempts"] == "2"  # the dropped send, then the retry
    assert second.parse().choices[0].message.content == "pong"
    assert len(upstream.requests) == 3  # 1 + the dropped one + the retry: nothing unseen
    store = RecordStore(f"sqlite:///{db}")
    try:
        calls = [r for r in store.query() if r.kind == "call"]
    finally:
        store.close()
    assert sorted(r.attempts for r in calls) == [1, 2]
