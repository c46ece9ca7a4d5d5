"""`sluice bench cache`: cache-key and exact-cache hit cost in-process (memory backend)."""

from __future__ import annotations

import asyncio
import time

from sluice.cache.backends import MemoryBackend
from sluice.cache.exact import ExactCacheStage
from sluice.cache.key import cache_key
from sluice.config import ExactCacheConfig
from sluice.pipeline.context import CallContext, Result
from sluice.types import (
    ChatRequest,
    ChatResponse,
    Message,
    TextPart,
    Tool,
    ToolCallPart,
    ToolResultPart,
    Usage,
)


def _requests() -> dict[str, ChatRequest]:
    small = ChatRequest(
        "gpt-4o-mini", [Message("user", [TextPart("What is a sluice?")])], temperature=0
    )
    tool = Tool(
        "lookup",
        "Look a thing up",
        {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    )
    turns = [
        Message("user", [TextPart("Find the opening hours of the canal lock. " * 20)]),
        Message("assistant", [ToolCallPart("call_1", "lookup", '{"q": "canal lock hours"}')]),
        Message("tool", [ToolResultPart("call_1", [TextPart("Open 08:00-18:00 daily. " * 30)])]),
        Message("user", [TextPart("And on holidays? " * 10)]),
    ]
    big = ChatRequest(
        "gpt-4o-mini",
        turns,
        system=[TextPart("You are a helpful guide. " * 40)],
        tools=[tool, Tool("book", None, tool.parameters)],
        temperature=0,
    )
    return {"one short message": small, "4 turns + tools, ~3.5 KB": big}


async def _measure(req: ChatRequest, n: int) -> tuple[float, float]:
    # Opt in to tool-result conversations, so the large request is cacheable too.
    stage = ExactCacheStage(ExactCacheConfig(cache_tool_results=True), MemoryBackend())
    answer = ChatResponse("r", "gpt-4o-mini", [TextPart("a cached answer")], usage=Usage(9, 3))

    async def upstream(ctx: CallContext) -> Result:
        return answer

    await stage(CallContext(req), upstream)  # the miss that stores it
    started = time.perf_counter()
    for _ in range(n):
        cache_key(req, "default", "v1")
    key_us = (time.perf_counter() - started) / n * 1e6
    probe = CallContext(req)
    await stage(probe, upstream)
    if probe.cache_status != "exact":
        raise RuntimeError(f"expected a cache hit, got {probe.cache_status}")
    started = time.perf_counter()
    for _ in range(n):
        await stage(CallContext(req), upstream)
    return key_us, (time.perf_counter() - started) / n * 1e6


def run(n: int) -> str:
    lines = [f"{'request':<28}{'cache key µs':>14}{'hit µs':>10}"]
    for name, req in _requests().items():
        key_us, hit_us = asyncio.run(_measure(req, n))
        lines.append(f"{name:<28}{key_us:>14.1f}{hit_us:>10.1f}")
    return "\n".join(lines)
