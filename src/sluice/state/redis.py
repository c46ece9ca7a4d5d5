"""One Redis connection pool per URL, shared by the exact cache and idempotency records, the
limit/budget counters and the key-change broadcast.

Each used to open its own client with its own pool and timeouts (three pools to one Redis).
`client(url)` returns a light `Redis` client over the shared pool; `release(client)` gives it
back, and the last user disconnects the pool. Pools belong to the event loop that made them
(redis.asyncio connections are bound to their loop), so they are keyed by (url, loop).

The pool is a `BlockingConnectionPool`: callers beyond `MAX_CONNECTIONS` wait for a free
connection (up to `WAIT_S`) instead of failing. Reads time out after `SOCKET_TIMEOUT_S`;
callers that need a tighter bound wrap their call in `asyncio.timeout` (the counters do),
and pub/sub reads pass their own timeout.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import BlockingConnectionPool, Redis

# Few connections, each reused at once (a command or script takes well under a millisecond):
# a burst of new connections on a busy machine takes longer to connect than a warm
# connection takes to come free (measured: 64 at once timed out connecting under load).
MAX_CONNECTIONS = 32
WAIT_S = 4.0  # for a free connection when all are busy
SOCKET_TIMEOUT_S = 1.0
CONNECT_TIMEOUT_S = 2.0


@dataclass(slots=True)
class _Shared:
    pool: BlockingConnectionPool
    users: int


_pools: dict[tuple[str, int], _Shared] = {}


def client(url: str) -> Redis:
    """A client on the running loop's shared pool for `url`; pair with `release`."""
    from redis.asyncio import BlockingConnectionPool, Redis  # imported only when Redis is used

    try:
        loop_id = id(asyncio.get_running_loop())
    except RuntimeError:  # built outside a loop: bound to the loop that first uses it
        loop_id = 0
    key = (url, loop_id)
    shared = _pools.get(key)
    if shared is None:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=WAIT_S,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
        )
        shared = _pools[key] = _Shared(pool, 0)
    shared.users += 1
    return Redis(connection_pool=shared.pool)


async def release(redis: Redis) -> None:
    """One user fewer; the last one disconnects the pool."""
    pool = redis.connection_pool
    for key, shared in list(_pools.items()):
        if shared.pool is pool:
            shared.users -= 1
            if shared.users > 0:
                return
            del _pools[key]
            break
    await redis.aclose()
    await pool.disconnect()
