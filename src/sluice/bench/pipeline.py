"""`sluice bench pipeline`: the cost of Sluice's own code per request, without HTTP.

Decodes an OpenAI request body and runs the full pipeline (plan executor, structured-output
and settle stages) against an instant in-process provider, so what is measured is Sluice's
code alone; the HTTP server and client are measured by `sluice bench overhead`.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from sluice.config import default_config
from sluice.gateway import Gateway
from sluice.pipeline.context import CallContext
from sluice.providers.base import Deployment
from sluice.types import CallMeta, ChatRequest, ChatResponse, EventStream, TextPart, Usage
from sluice.wire.openai.request import decode_request

BODY = orjson.dumps(
    {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "Summarize the benefits of connection pooling."}],
        "max_tokens": 64,
    }
)


class InstantProvider:
    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        return ChatResponse("r", dep.model, [TextPart("hello")], usage=Usage(20, 10))

    def stream(self, req: ChatRequest, dep: Deployment) -> EventStream:
        raise NotImplementedError

    async def close(self) -> None: ...


async def _measure(requests: int) -> float:
    gateway = Gateway(default_config())
    gateway.runtime.providers = {name: InstantProvider() for name in gateway.runtime.providers}

    async def one() -> None:
        req = decode_request(orjson.loads(BODY), CallMeta())
        await gateway.handler(CallContext(req))

    for _ in range(min(2000, requests)):
        await one()
    started = time.perf_counter()
    for _ in range(requests):
        await one()
    return (time.perf_counter() - started) / requests * 1e6


def run(requests: int) -> str:
    per_request = asyncio.run(_measure(requests))
    return f"pipeline: {per_request:.1f} µs per request (decode + all stages), {requests} requests"
