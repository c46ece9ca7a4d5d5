"""Rate limits and budgets in a real Redis: exact under concurrency and across replicas."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator

import pytest

from sluice.governance.counters import BudgetCheck, CounterBackendError, RateCheck, Settlement
from sluice.governance.redis_counters import RedisCounters

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    prefix = f"sluice-test:limits:{uuid.uuid4().hex}:"
    probe = RedisCounters(REDIS_URL, prefix)
    try:
        await probe.read([], [])
    except CounterBackendError as exc:
        await probe.close()
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    yield prefix
    await probe.clear()
    await probe.close()


def rpm(limit: int) -> RateCheck:
    return RateCheck("rate:key:k:requests", "key:k", "requests", limit, 1)


async def test_many_concurrent_tasks_never_exceed_the_limit(prefix: str) -> None:
    counters = RedisCounters(REDIS_URL, prefix, timeout_s=2.0)
    try:
        results = await asyncio.gather(
            *(counters.admit(f"t{i}", [rpm(37)], [], 60) for i in range(300))
        )
    finally:
        await counters.close()
    assert sum(r.admitted for r in results) == 37
    refused = [r for r in results if not r.admitted]
    assert all(50 < r.retry_after_s <= 60 for r in refused)


async def test_two_replicas_share_one_limit_and_one_budget(prefix: str) -> None:
    a = RedisCounters(REDIS_URL, prefix, timeout_s=2.0)
    b = RedisCounters(REDIS_URL, prefix, timeout_s=2.0)
    budget = BudgetCheck("budget:tenant:t:usd", "tenant:t", "total", "usd", 1000, 30, True, None)
    try:
        results = await asyncio.gather(
            *((a if i % 2 else b).admit(f"t{i}", [rpm(500)], [budget], 60) for i in range(200))
        )
        admitted = [i for i, r in enumerate(results) if r.admitted]
        assert len(admitted) == 33  # 33 * 30 <= 1000 < 34 * 30, whichever replica asked
        # Settle on the other replica than the one that admitted: state is shared.
        for i in admitted:
            await (b if i % 2 else a).settle(f"t{i}", Settlement([], [(budget.key, 10, None)]))
        state = await a.read([rpm(500)], [budget])
        assert (state.budgets[0].spent, state.budgets[0].reserved) == (330, 0)
        assert state.rates[0].used == 33
    finally:
        await a.close()
        await b.close()


async def test_tpm_settle_and_reservation_expiry(prefix: str) -> None:
    counters = RedisCounters(REDIS_URL, prefix)
    tpm = RateCheck("rate:gateway:tokens", "gateway", "tokens", 1000, 900)
    budget = BudgetCheck("budget:key:k:tokens", "key:k", "total", "tokens", 1000, 900, True, None)
    try:
        assert (await counters.admit("one", [tpm], [], 60)).admitted
        assert not (await counters.admit("two", [tpm], [], 60)).admitted
        await counters.settle("one", Settlement([(tpm.key, 40)], []))
        assert (await counters.admit("two", [tpm], [], 60)).admitted
        # A reservation whose call never settles is gone after its deadline.
        assert (await counters.admit("crash", [], [budget], 0.3)).admitted
        assert not (await counters.admit("next", [], [budget], 0.3)).admitted
        await asyncio.sleep(0.4)
        assert (await counters.admit("next", [], [budget], 60)).admitted
        state = await counters.read([], [budget])
        assert (state.budgets[0].spent, state.budgets[0].reserved) == (0, 900)
    finally:
        await counters.close()


async def test_redis_down_is_a_typed_error_fast() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    counters = RedisCounters(f"redis://127.0.0.1:{port}/0", "x:", timeout_s=0.2)
    try:
        with pytest.raises(CounterBackendError):
            await counters.admit("t", [rpm(1)], [], 60)
        with pytest.raises(CounterBackendError):
            await counters.settle("t", Settlement([], []))
    finally:
        await counters.close()
