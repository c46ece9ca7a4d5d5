"""IdempotencyStage with MemoryBackend: one upstream call per key, identical replays."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sluice.cache.backends import MemoryBackend
from sluice.cache.idempotency import (
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    IdempotencyStage,
)
from sluice.config import IdempotencyConfig
from sluice.errors import UnprocessableError, UpstreamConnectError
from sluice.identity import Identity
from sluice.pipeline.context import CallContext, Handler, compose
from sluice.types import ChatRequest, ChatResponse
from tests.unit.test_cache_exact import Upstream, drain
from tests.unit.test_cache_exact import request as base_request


def request(
    text: str = "hello", *, key: str | None = "k1", header: str = "idempotency-key", **kw: Any
) -> ChatRequest:
    headers = {header: key} if key is not None else {}
    return base_request(text, headers=headers, temperature=0.9, **kw)


class Harness:
    def __init__(self, upstream: Upstream | None = None, **config: Any) -> None:
        self.backend = MemoryBackend()
        self.stage = IdempotencyStage(IdempotencyConfig(**config), self.backend)
        self.upstream = upstream or Upstream()
        self.handler: Handler = compose([self.stage], self.upstream)

    async def call(
        self, req: ChatRequest, tenant: str | None = None
    ) -> tuple[ChatResponse, CallContext]:
        ctx = CallContext(req)
        if tenant is not None:  # as the auth stage sets it from a key of that tenant
            ctx.identity = Identity(key_id="k-" + tenant, tenant=tenant)
        resp, _ = await drain(await self.handler(ctx))
        return resp, ctx


@pytest.mark.parametrize("header", ["idempotency-key", "x-sluice-idempotency-key"])
async def test_sequential_duplicate_is_replayed(header: str) -> None:
    h = Harness()
    first, ctx1 = await h.call(request(header=header))
    second, ctx2 = await h.call(request(header=header))
    assert h.upstream.calls == 1
    assert second == first  # same id, text, tool calls, usage
    assert "x-sluice-idempotent-replay" not in ctx1.response_headers
    assert ctx2.response_headers["x-sluice-idempotent-replay"] == "true"


async def test_without_a_key_nothing_changes() -> None:
    h = Harness()
    await h.call(request(key=None))
    await h.call(request(key=None))
    assert h.upstream.calls == 2 and len(h.backend) == 0


async def test_disabled() -> None:
    h = Harness(enabled=False)
    await h.call(request())
    await h.call(request())
    assert h.upstream.calls == 2


async def test_concurrent_duplicates_make_one_upstream_call() -> None:
    h = Harness(Upstream(delay_s=0.05))
    results = await asyncio.gather(*(h.call(request()) for _ in range(5)))
    assert h.upstream.calls == 1
    assert all(resp == results[0][0] for resp, _ in results)
    replays = [ctx.response_headers.get("x-sluice-idempotent-replay") for _, ctx in results]
    assert replays.count("true") == 4
    assert h.stage.stats.waits == 4


async def test_concurrent_streaming_duplicates_make_one_call_and_stream_the_same() -> None:
    h = Harness(Upstream(delay_s=0.05))

    async def one() -> tuple[ChatResponse, list[Any]]:
        return await drain(await h.handler(CallContext(request(stream=True))))

    results = await asyncio.gather(*(one() for _ in range(5)))
    assert h.upstream.calls == 1
    assert all(r == results[0] for r in results)


async def test_key_reused_with_another_body_is_422() -> None:
    h = Harness()
    await h.call(request("first body"))
    with pytest.raises(IdempotencyKeyReusedError) as info:
        await h.call(request("another body"))
    err = info.value
    assert isinstance(err, UnprocessableError)
    assert err.http_status == 422 and err.code == "idempotency_key_reused"
    assert "different request body" in err.message
    assert err.openai_body()["error"]["code"] == "idempotency_key_reused"
    assert h.upstream.calls == 1


async def test_key_reused_while_the_first_is_running_is_422_at_once() -> None:
    h = Harness(Upstream(delay_s=0.2))
    first = asyncio.create_task(h.call(request("first body")))
    await asyncio.sleep(0.01)
    with pytest.raises(IdempotencyKeyReusedError):
        await h.call(request("another body"))
    await first


async def test_stream_flag_is_not_part_of_the_fingerprint() -> None:
    h = Harness()
    first, _ = await drain(await h.handler(CallContext(request(stream=True))))
    plain, ctx = await h.call(request(stream=False))
    assert plain == first and ctx.response_headers["x-sluice-idempotent-replay"] == "true"


async def test_failure_releases_the_key() -> None:
    h = Harness(Upstream(fail=True))
    with pytest.raises(UpstreamConnectError):
        await h.call(request())
    assert len(h.backend) == 0
    h.upstream.fail = False
    resp, ctx = await h.call(request())
    assert resp.id == "resp-2" and "x-sluice-idempotent-replay" not in ctx.response_headers
    assert h.upstream.calls == 2


class FailFirst(Upstream):
    async def __call__(self, ctx: CallContext) -> Any:
        self.fail = self.calls == 0  # the first call fails, later ones succeed
        return await super().__call__(ctx)


async def test_waiters_take_over_when_the_first_call_fails() -> None:
    h = Harness(FailFirst(delay_s=0.05))
    results = await asyncio.gather(*(h.call(request()) for _ in range(3)), return_exceptions=True)
    errors = [r for r in results[:3] if isinstance(r, BaseException)]
    answers = [r[0] for r in results[:3] if isinstance(r, tuple)]
    assert len(errors) == 1 and isinstance(errors[0], UpstreamConnectError)
    assert len(answers) == 2 and answers[0] == answers[1]
    assert h.upstream.calls == 2


async def test_stream_cut_midway_releases_the_key() -> None:
    h = Harness(Upstream(fail_mid_stream=True))
    with pytest.raises(UpstreamConnectError):
        await h.call(request(stream=True))
    assert len(h.backend) == 0
    h.upstream.fail_mid_stream = False
    await h.call(request(stream=True))
    assert h.upstream.calls == 2


async def test_stream_closed_early_releases_the_key() -> None:
    h = Harness()
    result = await h.handler(CallContext(request(stream=True)))
    assert not isinstance(result, ChatResponse)
    await anext(result)
    await result.aclose()
    assert len(h.backend) == 0


async def test_stream_without_finish_releases_the_key() -> None:
    h = Harness(Upstream(no_finish=True))
    await h.call(request(stream=True))
    assert len(h.backend) == 0


async def test_still_running_after_max_wait_is_409() -> None:
    h = Harness(Upstream(delay_s=0.5), max_wait_s=0.05, poll_interval_s=0.01)
    first = asyncio.create_task(h.call(request()))
    await asyncio.sleep(0.01)
    with pytest.raises(IdempotencyInProgressError) as info:
        await h.call(request())
    assert info.value.http_status == 409
    assert info.value.code == "idempotency_key_in_progress"
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert len(h.backend) == 0  # cancelled: released


async def test_keys_are_per_tenant() -> None:
    h = Harness()
    await h.call(request(), tenant="acme")
    await h.call(request(), tenant="globex")
    await h.call(request("other body"), tenant="initech")  # no conflict across tenants
    assert h.upstream.calls == 3


async def test_overlong_key_is_rejected() -> None:
    h = Harness()
    with pytest.raises(UnprocessableError) as info:
        await h.call(request(key="k" * 256))
    assert info.value.code == "idempotency_key_invalid"


class BrokenBackend(MemoryBackend):
    async def add(self, key: str, value: bytes, ttl_s: float) -> bool:
        raise ConnectionError("redis down")


async def test_backend_failure_goes_on_without_idempotency() -> None:
    stage = IdempotencyStage(IdempotencyConfig(), BrokenBackend())
    upstream = Upstream()
    handler = compose([stage], upstream)
    for _ in range(2):
        resp = await handler(CallContext(request()))
        assert isinstance(resp, ChatResponse)
    assert upstream.calls == 2 and stage.stats.errors == 2


async def test_replays_outlive_pending_ttl_but_expire_after_ttl() -> None:
    now = [0.0]
    h = Harness()
    h.backend = MemoryBackend(clock=lambda: now[0])
    h.stage = IdempotencyStage(IdempotencyConfig(ttl_s=100, pending_ttl_s=10), h.backend)
    h.handler = compose([h.stage], h.upstream)
    await h.call(request())
    now[0] = 50  # past the pending TTL, within the answer TTL
    await h.call(request())
    assert h.upstream.calls == 1
    now[0] = 101
    await h.call(request())
    assert h.upstream.calls == 2
