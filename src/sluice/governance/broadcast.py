"""Key changes broadcast over Redis pub/sub (when `governance.backend` is `redis`).

A replica that updates or revokes a key publishes its hash on `sluice:keys:changed`; every
replica drops that key from its lookup cache at once, instead of after the cache TTL. The
TTL stays as the backstop: a lost message or a Redis outage delays a revocation by at most
`auth.key_cache_ttl_s`, never forever. After a reconnect the whole cache is dropped, since
messages may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from sluice.state import redis as redis_pools

log = logging.getLogger("sluice.governance")

CHANNEL = "sluice:keys:changed"
_RETRY_S = 1.0


class KeyChanges:
    def __init__(
        self, redis_url: str, forget: Callable[[str], None], forget_all: Callable[[], None]
    ) -> None:
        self._client = redis_pools.client(redis_url)  # the process's pool for the URL
        self._forget = forget
        self._forget_all = forget_all
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="sluice-key-changes")

    async def publish(self, key_hash: str) -> None:
        try:
            await self._client.publish(CHANNEL, key_hash)
        except (RedisError, OSError) as exc:
            log.warning(
                "could not broadcast a key change (other replicas see it within "
                "the key cache TTL): %s",
                exc,
            )

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await redis_pools.release(self._client)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning("key-change subscription lost (%s); retrying", exc)
                await asyncio.sleep(_RETRY_S)

    async def _listen(self) -> None:
        async with self._client.pubsub() as pubsub:
            await pubsub.subscribe(CHANNEL)
            self._forget_all()  # anything cached before (re)subscribing may be stale
            self.subscribed.set()
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    self._forget(data.decode() if isinstance(data, bytes) else str(data))
