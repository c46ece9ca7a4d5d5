"""ExactCacheStage with MemoryBackend and a fake upstream that counts its calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import pytest

from sluice.cache.backends import MemoryBackend
from sluice.cache.exact import ExactCacheStage
from sluice.collect import StreamCollector
from sluice.config import ExactCacheConfig
from sluice.errors import UpstreamConnectError
from sluice.identity import Identity
from sluice.pipeline.context import CallContext, Handler, Result, compose
from sluice.types import (
    CallMeta,
    ChatRequest,
    ChatResponse,
    EventStream,
    FinishReason,
    Message,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class StatusContext(CallContext):
    cache_status: str | None = None


class Upstream:
    """Answers `answer <n>` for its n-th call; optionally streams, fails or stalls."""

    def __init__(
        self,
        *,
        fail_mid_stream: bool = False,
        finish: FinishReason = "stop",
        no_finish: bool = False,
        delay_s: float = 0.0,
        fail: bool = False,
    ) -> None:
        self.calls = 0
        self.fail_mid_stream = fail_mid_stream
        self.finish: FinishReason = finish
        self.no_finish = no_finish
        self.delay_s = delay_s
        self.fail = fail
        self.degrade = False

    def answer(self, n: int) -> ChatResponse:
        return ChatResponse(
            id=f"resp-{n}",
            model="m",
            parts=[TextPart(f"answer {n}"), ToolCallPart(f"call-{n}", "f", '{"x": 1}')],
            finish_reason=self.finish,
            usage=Usage(10, n, 2, 1),
            created=1_700_000_000 + n,
        )

    async def __call__(self, ctx: CallContext) -> Result:
        self.calls += 1
        n = self.calls
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise UpstreamConnectError("upstream down")
        ctx.degraded = self.degrade
        resp = self.answer(n)
        return self._stream(resp) if ctx.request.stream else resp

    async def _stream(self, resp: ChatResponse) -> AsyncGenerator[StreamEvent, None]:
        from sluice.replay import events_from_response

        async for event in events_from_response(resp):
            if self.no_finish and type(event).__name__ == "Finish":
                return
            yield event
            if self.fail_mid_stream and isinstance(event, TextDelta):
                raise UpstreamConnectError("reset mid-stream")


def request(
    text: str = "hello",
    *,
    temperature: float | None = 0,
    stream: bool = False,
    headers: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
    model: str = "m",
    messages: list[Message] | None = None,
) -> ChatRequest:
    return ChatRequest(
        model,
        messages or [Message("user", [TextPart(text)])],
        temperature=temperature,
        stream=stream,
        meta=CallMeta(headers=headers or {}, metadata=metadata or {}),
    )


async def drain(result: Result) -> tuple[ChatResponse, list[StreamEvent]]:
    if isinstance(result, ChatResponse):
        return result, []
    collector, events = StreamCollector(), []
    try:
        async for event in result:
            collector.add(event)
            events.append(event)
    finally:
        await result.aclose()
    return collector.response(), events


class Harness:
    def __init__(self, upstream: Upstream | None = None, **config: Any) -> None:
        self.clock = Clock()  # monotonic, for the backend's TTL
        self.wall = Clock(1_700_000_000.0)  # wall clock, for stored_at
        self.backend = MemoryBackend(clock=self.clock)
        self.stage = ExactCacheStage(ExactCacheConfig(**config), self.backend, clock=self.wall)
        self.upstream = upstream or Upstream()
        self.handler: Handler = compose([self.stage], self.upstream)

    async def call(
        self, req: ChatRequest, tenant: str | None = None
    ) -> tuple[ChatResponse, CallContext]:
        """One call through the stage; `tenant` as the auth stage would set it (None: auth off)."""
        ctx = StatusContext(req)
        if tenant is not None:
            ctx.identity = Identity(key_id=f"key-{tenant}", tenant=tenant)
        resp, _ = await drain(await self.handler(ctx))
        return resp, ctx


async def test_miss_then_hit_without_calling_upstream() -> None:
    h = Harness()
    first, ctx1 = await h.call(request())
    assert ctx1.response_headers["x-sluice-cache"] == "miss"
    assert getattr(ctx1, "cache_status") == "miss"  # noqa: B009
    h.wall.now += 42.7
    second, ctx2 = await h.call(request())
    assert h.upstream.calls == 1
    assert second == first
    assert ctx2.response_headers["x-sluice-cache"] == "exact"
    assert ctx2.response_headers["x-sluice-cache-age"] == "42"
    assert ctx2.cache_status == "exact"
    assert ctx2.last_response == first
    assert (h.stage.stats.hits, h.stage.stats.misses, h.stage.stats.stores) == (1, 1, 1)


async def test_cache_status_is_set_for_the_call_record() -> None:
    h = Harness()
    first = CallContext(request())
    await h.handler(first)
    second = CallContext(request())
    await h.handler(second)
    assert (first.cache_status, second.cache_status) == ("miss", "exact")
    assert second.response_headers["x-sluice-cache"] == "exact"


async def test_entries_expire_after_ttl() -> None:
    h = Harness(ttl_s=60)
    await h.call(request())
    h.clock.now += 59
    await h.call(request())
    assert h.upstream.calls == 1
    h.clock.now += 1
    resp, ctx = await h.call(request())
    assert h.upstream.calls == 2 and resp.id == "resp-2"
    assert ctx.response_headers["x-sluice-cache"] == "miss"


async def test_different_requests_miss() -> None:
    h = Harness()
    await h.call(request("a"))
    await h.call(request("b"))
    assert h.upstream.calls == 2


@pytest.mark.parametrize("where", ["header", "metadata"])
async def test_no_store_neither_reads_nor_writes(where: str) -> None:
    h = Harness()
    opt = {"headers": {"x-sluice-cache": "no-store"}} if where == "header" else {}
    if where == "metadata":
        opt = {"metadata": {"cache": "no-store"}}
    await h.call(request())  # stored
    resp, ctx = await h.call(request(**opt))  # type: ignore[arg-type]
    assert ctx.response_headers["x-sluice-cache"] == "bypass"
    assert resp.id == "resp-2"
    h2 = Harness()
    await h2.call(request(**opt))  # type: ignore[arg-type]
    assert len(h2.backend) == 0


@pytest.mark.parametrize("directive", ["no-cache", "refresh", " Refresh "])
async def test_no_cache_and_refresh_skip_the_read_and_overwrite(directive: str) -> None:
    h = Harness()
    await h.call(request())
    fresh, ctx = await h.call(request(headers={"x-sluice-cache": directive}))
    assert fresh.id == "resp-2"
    assert ctx.response_headers["x-sluice-cache"] == "miss"
    again, ctx = await h.call(request())
    assert again.id == "resp-2" and ctx.response_headers["x-sluice-cache"] == "exact"
    assert h.upstream.calls == 2


async def test_unknown_directive_is_ignored() -> None:
    h = Harness()
    await h.call(request())
    _, ctx = await h.call(request(metadata={"cache": "sometimes"}))
    assert ctx.response_headers["x-sluice-cache"] == "exact"


@pytest.mark.parametrize("temperature", [None, 0.7, 1e-9])
async def test_nondeterministic_requests_bypass_by_default(temperature: float | None) -> None:
    h = Harness()
    for _ in range(2):
        _, ctx = await h.call(request(temperature=temperature))
        assert ctx.response_headers["x-sluice-cache"] == "bypass"
        assert getattr(ctx, "cache_status") == "bypass"  # noqa: B009
    assert h.upstream.calls == 2 and len(h.backend) == 0


async def test_nondeterministic_requests_cached_when_opted_in() -> None:
    h = Harness(cache_nondeterministic=True)
    await h.call(request(temperature=None))
    _, ctx = await h.call(request(temperature=None))
    assert ctx.response_headers["x-sluice-cache"] == "exact"
    assert h.upstream.calls == 1


def _with_tool_result() -> list[Message]:
    return [
        Message("user", [TextPart("weather?")]),
        Message("assistant", [ToolCallPart("c1", "weather", "{}")]),
        Message("tool", [ToolResultPart("c1", [TextPart("sunny")])]),
    ]


@pytest.mark.parametrize(("opt_in", "calls"), [(False, 2), (True, 1)])
async def test_tool_results_cached_only_when_opted_in(opt_in: bool, calls: int) -> None:
    h = Harness(cache_tool_results=opt_in)
    for _ in range(2):
        await h.call(request(messages=_with_tool_result()))
    assert h.upstream.calls == calls


async def test_models_filter() -> None:
    h = Harness(models=["cached-model"])
    for model in ["cached-model", "cached-model", "other", "other"]:
        await h.call(request(model=model))
    assert h.upstream.calls == 3


async def test_disabled_does_nothing() -> None:
    h = Harness(enabled=False)
    for _ in range(2):
        _, ctx = await h.call(request())
        assert "x-sluice-cache" not in ctx.response_headers
    assert h.upstream.calls == 2


async def test_tenants_are_isolated() -> None:
    h = Harness()
    _, a1 = await h.call(request(), tenant="acme")
    _, b1 = await h.call(request(), tenant="globex")
    assert h.upstream.calls == 2
    assert a1.response_headers["x-sluice-cache"] == b1.response_headers["x-sluice-cache"] == "miss"
    a2, _ = await h.call(request(), tenant="acme")
    b2, _ = await h.call(request(), tenant="globex")
    assert (a2.id, b2.id, h.upstream.calls) == ("resp-1", "resp-2", 2)
    _, default = await h.call(request())
    assert default.response_headers["x-sluice-cache"] == "miss"


async def test_streamed_miss_is_stored_and_replayed_as_a_stream() -> None:
    h = Harness()
    ctx1 = StatusContext(request(stream=True))
    first, events1 = await drain(await h.handler(ctx1))
    assert ctx1.response_headers["x-sluice-cache"] == "miss"
    ctx2 = StatusContext(request(stream=True))
    result = await h.handler(ctx2)
    assert not isinstance(result, ChatResponse)
    second, events2 = await drain(result)
    assert ctx2.response_headers["x-sluice-cache"] == "exact"
    assert h.upstream.calls == 1
    assert second == first and events2 == events1
    assert isinstance(events2[0], StreamStart) and events2[0].id == "resp-1"
    plain, ctx3 = await h.call(request(stream=False))  # `stream` is not part of the key
    assert plain == first and ctx3.response_headers["x-sluice-cache"] == "exact"


async def test_non_streamed_miss_replays_as_stream() -> None:
    h = Harness()
    first, _ = await h.call(request())
    result = await h.handler(CallContext(request(stream=True)))
    assert not isinstance(result, ChatResponse)
    replayed, _ = await drain(result)
    assert replayed == first


async def test_stream_that_fails_midway_is_not_stored() -> None:
    h = Harness(Upstream(fail_mid_stream=True))
    with pytest.raises(UpstreamConnectError):
        await h.call(request(stream=True))
    assert len(h.backend) == 0
    h.upstream.fail_mid_stream = False
    _, ctx = await h.call(request(stream=True))
    assert ctx.response_headers["x-sluice-cache"] == "miss"
    assert h.upstream.calls == 2 and len(h.backend) == 1


async def test_stream_without_finish_is_not_stored() -> None:
    h = Harness(Upstream(no_finish=True))
    await h.call(request(stream=True))
    assert len(h.backend) == 0


async def test_stream_closed_early_is_not_stored() -> None:
    h = Harness()
    result = await h.handler(CallContext(request(stream=True)))
    assert not isinstance(result, ChatResponse)
    await anext(result)
    await anext(result)
    await result.aclose()
    assert len(h.backend) == 0


async def test_stream_drained_then_closed_is_stored_once() -> None:
    h = Harness()
    result: EventStream = await h.handler(CallContext(request(stream=True)))  # type: ignore[assignment]
    async for _ in result:
        pass
    await result.aclose()
    assert h.stage.stats.stores == 1


async def test_degraded_and_filtered_answers_are_not_stored() -> None:
    h = Harness()
    h.upstream.degrade = True
    await h.call(request())
    await h.call(request(stream=True))
    assert len(h.backend) == 0
    h2 = Harness(Upstream(finish="content_filter"))
    await h2.call(request())
    await h2.call(request(stream=True))
    assert len(h2.backend) == 0


async def test_upstream_errors_are_not_stored() -> None:
    h = Harness(Upstream(fail=True))
    with pytest.raises(UpstreamConnectError):
        await h.call(request())
    assert len(h.backend) == 0


class BrokenBackend(MemoryBackend):
    async def get(self, key: str) -> bytes | None:
        raise ConnectionError("redis down")

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        raise ConnectionError("redis down")

    async def set_tagged(self, key: str, value: bytes, ttl_s: float, tags: Any) -> None:
        raise ConnectionError("redis down")


async def test_backend_failures_never_fail_the_request() -> None:
    stage = ExactCacheStage(ExactCacheConfig(), BrokenBackend())
    upstream = Upstream()
    handler = compose([stage], upstream)
    for stream in (False, True):
        ctx = CallContext(request(stream=stream))
        resp, _ = await drain(await handler(ctx))
        assert resp.id.startswith("resp-")
        assert ctx.response_headers["x-sluice-cache"] == "miss"
    assert stage.stats.errors == 4  # two reads, two writes


async def test_unreadable_entry_is_a_miss() -> None:
    h = Harness()
    await h.call(request())
    for key in list(h.backend._entries):
        await h.backend.set(key, b"garbage", 60)
    resp, ctx = await h.call(request())
    assert resp.id == "resp-2" and ctx.response_headers["x-sluice-cache"] == "miss"
    assert h.stage.stats.errors == 1


async def test_hit_returns_a_fresh_copy() -> None:
    h = Harness()
    first, _ = await h.call(request())
    second, _ = await h.call(request())
    second.parts.clear()
    third, _ = await h.call(request())
    assert third == first
