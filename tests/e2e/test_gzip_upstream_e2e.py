"""review4: upstream answers compressed (gzip, zlib deflate, raw deflate), JSON and
streamed, through the gateway's default transport to both official SDKs: the same text as
uncompressed. A gzipping proxy sits between the gateway and the simulator."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import anthropic
import openai
import pytest
from aiohttp import web

from sluice import server
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration
WBITS = {"gzip": 31, "deflate": 15, "raw-deflate": -15}


@asynccontextmanager
async def packing_proxy(sim_url: str, coding: str) -> AsyncIterator[str]:
    """Forwards to the simulator; compresses its answer, flushing after each read."""
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with session.post(
            sim_url + request.path, data=await request.read(), headers=headers
        ) as upstream:
            out = web.StreamResponse(status=upstream.status)
            out.content_type = upstream.content_type
            out.headers["content-encoding"] = "deflate" if "deflate" in coding else coding
            await out.prepare(request)
            packer = zlib.compressobj(wbits=WBITS[coding])
            async for chunk in upstream.content.iter_any():
                await out.write(packer.compress(chunk) + packer.flush(zlib.Z_SYNC_FLUSH))
            await out.write(packer.flush())
            await out.write_eof()
            return out

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        await session.close()


async def answers(url: str) -> list[str]:
    got: list[str] = []
    headers = {"x-sim-output-tokens": "40"}
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as oai:
        chat = await oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "say something"}],
            extra_headers=headers,
        )
        got.append(chat.choices[0].message.content or "")
        stream = await oai.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "say something"}],
            stream=True,
            extra_headers=headers,
        )
        got.append("".join([c.choices[0].delta.content or "" async for c in stream if c.choices]))
    async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0) as ant:
        msg = await ant.messages.create(
            model="claude-haiku",
            max_tokens=100,
            messages=[{"role": "user", "content": "say something"}],
            extra_headers=headers,
        )
        got.append("".join(b.text for b in msg.content if b.type == "text"))
        async with ant.messages.stream(
            model="claude-haiku",
            max_tokens=100,
            messages=[{"role": "user", "content": "say something"}],
            extra_headers=headers,
        ) as events:
            got.append("".join([t async for t in events.text_stream]))
    return got


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_upstream_answers_reach_both_sdks_whole(sim_url: str, coding: str) -> None:
    async with packing_proxy(sim_url, coding) as proxied:
        runner, port = await server.start(gateway_config(proxied))
        try:
            got = await answers(f"http://127.0.0.1:{port}")
        finally:
            await runner.cleanup()
    plain_runner, plain_port = await server.start(gateway_config(sim_url))
    try:
        want = await answers(f"http://127.0.0.1:{plain_port}")
    finally:
        await plain_runner.cleanup()
    assert all(got) and got == want
