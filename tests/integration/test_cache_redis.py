"""RedisBackend against the local Redis server: the CacheBackend contract, keys prefixed."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from sluice.cache.backends import RedisBackend

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("SLUICE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def redis_backend_or_skip(prefix: str) -> RedisBackend:
    backend = RedisBackend(REDIS_URL, prefix=prefix)
    try:
        await backend.get("ping")
    except Exception as exc:
        await backend.close()
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc!r}")
    return backend


@pytest.fixture
async def redis_backend() -> AsyncIterator[RedisBackend]:
    backend = await redis_backend_or_skip(f"sluice-test:{uuid.uuid4().hex}:")
    try:
        yield backend
    finally:
        await backend.clear()
        await backend.close()


async def test_get_set_delete(redis_backend: RedisBackend) -> None:
    assert await redis_backend.get("k") is None
    await redis_backend.set("k", b"\x00binary\xff", 60)
    assert await redis_backend.get("k") == b"\x00binary\xff"
    await redis_backend.delete("k")
    assert await redis_backend.get("k") is None


async def test_keys_live_under_the_prefix(redis_backend: RedisBackend) -> None:
    await redis_backend.set("k", b"v", 60)
    other = RedisBackend(REDIS_URL, prefix=redis_backend.prefix + "other:")
    try:
        assert await other.get("k") is None
    finally:
        await other.close()
    assert await redis_backend.clear() == 1
    assert await redis_backend.get("k") is None


async def test_add_is_atomic_set_if_absent(redis_backend: RedisBackend) -> None:
    results = await asyncio.gather(*(redis_backend.add("lock", bytes([i]), 60) for i in range(10)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert await redis_backend.get("lock") == bytes([winner])


async def test_ttl_expires(redis_backend: RedisBackend) -> None:
    await redis_backend.set("short", b"v", 0.05)
    assert await redis_backend.add("short-lock", b"v", 0.05)
    await asyncio.sleep(0.15)
    assert await redis_backend.get("short") is None
    assert await redis_backend.add("short-lock", b"again", 60)
