"""The `lean` transport: Sluice's own HTTP/1.1 keep-alive pool (`sluice.providers.transport`,
asyncio protocols + httptools' C parser) behind the `UpstreamTransport` seam.

Opt-in per provider (`transport: lean`) for deployments that want the CPU it saves per
call (BENCHMARKS.md, "Upstream transport"); it knows no proxies and no HTTP/2. The
library client (`aiohttp`) is the default.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

from sluice.config import TimeoutConfig
from sluice.errors import UpstreamError
from sluice.providers.http import (
    TRAILING_END_S,
    SSEEvent,
    parse_json,
    sse_stream,
    status_error,
    transport_error,
)
from sluice.providers.transport import Headers, Pool, Response


class LeanTransport:
    """A keep-alive connection pool to one upstream, created lazily inside the event loop
    (a closed pool is replaced on next use)."""

    def __init__(self, name: str, max_connections: int) -> None:
        self.name = name
        self._max_connections = max_connections
        self._pool: Pool | None = None

    def pool(self) -> Pool:
        if self._pool is None or self._pool.closed:
            self._pool = Pool(self._max_connections, keepalive_s=30.0)
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig, dep: str
    ) -> tuple[Headers, Any]:
        """POST and return (headers, parsed JSON body); error statuses raise."""
        try:
            async with asyncio.timeout(timeouts.total_s):
                resp = await self.pool().post(url, headers, body, timeouts.connect_s)
                try:
                    raw = await resp.read()
                finally:
                    resp.release()
        except UpstreamError:
            raise
        except Exception as exc:
            raise transport_error(exc, dep) from exc
        if resp.status >= 400:
            raise status_error(resp.status, resp.headers, raw, dep)
        return resp.headers, parse_json(raw, dep)

    def open_stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig, dep: str
    ) -> AbstractAsyncContextManager[tuple[Headers, AsyncIterator[list[SSEEvent]]]]:
        """POST and yield (headers, SSE events: one list per network read); the deadlines
        and failures as in `sse_stream`."""

        def done(resp: Response, read_to_the_end: bool) -> None:
            if read_to_the_end:  # keep the connection once the body's end trails in
                resp.release_when_done(TRAILING_END_S)
            else:  # abandoned or failed: close it, so the upstream stops generating
                resp.release()

        return sse_stream(
            lambda: self.pool().post(url, headers, body, timeouts.connect_s),
            lambda resp: resp.chunks(),
            done,
            timeouts,
            dep,
            transport_error,
        )
