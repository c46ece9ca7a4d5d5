"""A replica that dies mid-call (its Redis connection gone, nothing settled or released)
gives back what it held: budget reservations within the lease, an in-flight
Idempotency-Key to a retry on another replica within the lease."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from redis.asyncio import Redis

from sluice.cache.backends import RedisBackend
from sluice.cache.idempotency import IdempotencyStage
from sluice.config import IdempotencyConfig
from sluice.governance.counters import BudgetCheck, Settlement
from sluice.governance.redis_counters import RedisCounters
from sluice.pipeline.context import CallContext, compose
from tests.integration.test_limits_redis import REDIS_URL
from tests.unit.test_cache_exact import Upstream, drain
from tests.unit.test_idempotency import request

pytestmark = pytest.mark.integration


async def redis_or_skip(prefix: str) -> None:
    probe = RedisCounters(REDIS_URL, prefix)
    try:
        await probe.read([], [])
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Redis unreachable: {exc}")
    finally:
        await probe.close()


async def test_a_dead_replicas_reservation_is_released_within_the_lease() -> None:
    prefix = f"sluice-test:lease:{uuid.uuid4().hex}:"
    await redis_or_skip(prefix)
    budget = BudgetCheck("budget:key:k:usd", "key:k", "total", "usd", 1000, 600, True, None)
    alive = RedisCounters(REDIS_URL, prefix, lease_s=0.6)
    doomed = RedisCounters(REDIS_URL, prefix, lease_s=0.6)
    watcher = RedisCounters(REDIS_URL, prefix)
    try:
        assert (await alive.admit("alive", [], [budget], 900)).admitted
        held = BudgetCheck("budget:key:k:usd", "key:k", "total", "usd", 1000, 300, True, None)
        assert (await doomed.admit("doomed", [], [held], 900)).admitted
        await doomed.close()  # kill -9: no settle, no more renewals
        await asyncio.sleep(2.0)  # > the lease; the live replica renewed ~6 times meanwhile
        state = await watcher.read([], [budget])
        assert state.budgets[0].reserved == 600  # the live call still holds its 600
        await alive.settle("alive", Settlement([], [(budget.key, 100, None)]))
        state = await watcher.read([], [budget])
        assert (state.budgets[0].spent, state.budgets[0].reserved) == (100, 0)
    finally:
        await alive.clear()
        await alive.close()
        await watcher.close()


async def test_a_retry_takes_over_a_dead_replicas_idempotency_key() -> None:
    prefix = f"sluice-test:idem:{uuid.uuid4().hex}:"
    await redis_or_skip(prefix)
    config = IdempotencyConfig(lease_s=0.9, max_wait_s=20)
    doomed_backend = RedisBackend(REDIS_URL, prefix)
    live_backend = RedisBackend(REDIS_URL, prefix)
    doomed = compose([IdempotencyStage(config, doomed_backend)], Upstream(delay_s=30))
    upstream = Upstream()
    live = compose([IdempotencyStage(config, live_backend)], upstream)
    first = asyncio.ensure_future(doomed(CallContext(request())))
    await asyncio.sleep(0.3)  # the first call holds the key
    # kill -9, as Redis sees it: the replica's renewals and its release never arrive
    await doomed_backend.close()
    doomed_backend._client = Redis.from_url("redis://127.0.0.1:9", socket_connect_timeout=0.2)
    started = time.monotonic()
    resp, _ = await drain(await live(CallContext(request())))
    took = time.monotonic() - started
    assert upstream.calls == 1 and resp.id == "resp-1"
    assert took < 3.0, took  # within ~the lease, not max_wait_s then a 409
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    await live_backend.close()
    await doomed_backend.close()


async def test_a_live_first_call_keeps_its_key_past_the_lease() -> None:
    prefix = f"sluice-test:idem:{uuid.uuid4().hex}:"
    await redis_or_skip(prefix)
    config = IdempotencyConfig(lease_s=0.6, max_wait_s=20)
    backend = RedisBackend(REDIS_URL, prefix)
    upstream = Upstream(delay_s=2.0)  # runs for more than 3 leases
    handler = compose([IdempotencyStage(config, backend)], upstream)
    first_call = asyncio.ensure_future(handler(CallContext(request())))
    await asyncio.sleep(0.2)
    second_ctx = CallContext(request())
    second, _ = await drain(await handler(second_ctx))  # waits ~1.8 s: > 3 leases
    first, _ = await drain(await first_call)
    assert upstream.calls == 1 and second == first
    assert second_ctx.response_headers["x-sluice-idempotent-replay"] == "true"
    await backend.close()
