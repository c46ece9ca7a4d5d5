"""One pooled client per upstream (`sluice.providers.transport`), and mapping of transport
failures to typed errors.

Adapters call `post` (whole body) or `open_stream` (SSE events); both raise only
`UpstreamError` subclasses, so stages above never see transport exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.config import TimeoutConfig
from sluice.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamMalformedError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from sluice.providers.ratelimit import parse_retry_after
from sluice.providers.transport import BadResponse, ConnectFailed, Headers, Pool
from sluice.providers.upstream_codes import upstream_code


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str


# How long a stream read to its last event may take to end its HTTP body, in the background,
# before its connection is closed instead of reused.
_TRAILING_END_S = 2.0

# Yielded after the events of each network read (see `sluice.types.Flush`).
READ_BOUNDARY = SSEEvent("sluice.read-boundary", "")


class UpstreamClient:
    """A keep-alive connection pool to one upstream, created lazily inside the event loop."""

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
        return resp.headers, _parse_json(raw, dep)

    @asynccontextmanager
    async def open_stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig, dep: str
    ) -> AsyncIterator[tuple[Headers, AsyncIterator[SSEEvent]]]:
        """POST and yield (headers, SSE events). The first event must come within ttft_s,
        later ones within idle_s of each other; the whole stream within total_s."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeouts.total_s
        first_by = min(started + timeouts.ttft_s, deadline)
        try:
            async with asyncio.timeout_at(first_by):
                resp = await self.pool().post(url, headers, body, timeouts.connect_s)
        except Exception as exc:
            raise transport_error(exc, dep) from exc
        read_to_the_end = False
        try:
            if resp.status >= 400:
                async with asyncio.timeout_at(min(loop.time() + timeouts.idle_s, deadline)):
                    raw = await resp.read()
                raise status_error(resp.status, resp.headers, raw, dep)
            chunks = _timed(resp.chunks(), first_by, timeouts.idle_s, deadline)
            yield resp.headers, _events(chunks, dep)
            read_to_the_end = True  # the adapter saw the stream's last event
        except UpstreamError:
            raise
        except Exception as exc:
            raise transport_error(exc, dep) from exc
        finally:
            if read_to_the_end:  # keep the connection once the body's end trails in
                resp.release_when_done(_TRAILING_END_S)
            else:  # abandoned or failed: close it, so the upstream stops generating
                resp.release()


async def _timed(
    chunks: AsyncIterator[bytes], first_by: float, idle_s: float, deadline: float
) -> AsyncIterator[bytes]:
    """`chunks`: the first by `first_by` (loop time), each later one within idle_s of the one
    before, all before the deadline."""
    loop = asyncio.get_running_loop()
    by = first_by
    while True:
        async with asyncio.timeout_at(by):
            chunk = await anext(chunks, None)
        if chunk is None:
            return
        yield chunk
        by = min(loop.time() + idle_s, deadline)


async def _events(chunks: AsyncIterator[bytes], dep: str) -> AsyncIterator[SSEEvent]:
    """SSE events from the body, read in whatever blocks the network delivers (one await
    per read, not per line)."""
    buffer = b""
    try:
        async for chunk in chunks:
            buffer += chunk
            if b"\r" in buffer:
                # Normalise CRLF / CR line ends; keep a trailing CR until its LF arrives.
                tail = buffer.endswith(b"\r")
                buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
                if tail:
                    buffer = buffer[:-1] + b"\r"
            while (end := buffer.find(b"\n\n")) >= 0:
                block, buffer = buffer[:end], buffer[end + 2 :]
                event = _parse_block(block)
                if event is not None:
                    yield event
            yield READ_BOUNDARY
        event = _parse_block(buffer.rstrip(b"\r\n"))
        if event is not None:
            yield event
    except UpstreamError:
        raise
    except Exception as exc:
        raise transport_error(exc, dep) from exc


def _parse_block(block: bytes) -> SSEEvent | None:
    event: str | None = None
    data: list[str] = []
    for raw in block.split(b"\n"):
        line = raw.decode("utf-8")
        if line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("event:"):
            event = line[6:].strip()
        # ":" comments and unknown fields are ignored, as the SSE spec says.
    return SSEEvent(event, "\n".join(data)) if data else None


def _parse_json(raw: bytes, dep: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamMalformedError(
            f"upstream {dep} sent a body that is not JSON", deployment=dep
        ) from exc


def parse_event_json(event: SSEEvent, dep: str) -> Any:
    try:
        return orjson.loads(event.data)
    except orjson.JSONDecodeError as exc:
        raise UpstreamMalformedError(
            f"upstream {dep} sent a stream event that is not JSON", deployment=dep
        ) from exc


def _error_message(raw: bytes) -> str:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:200].decode("utf-8", "replace")
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return raw[:200].decode("utf-8", "replace")


def status_error(status: int, headers: Headers, raw: bytes, dep: str) -> UpstreamStatusError:
    retry_after = parse_retry_after(headers)
    out_headers = {"retry-after": str(max(1, round(retry_after)))} if retry_after else {}
    return UpstreamStatusError(
        f"upstream {dep} answered {status}: {_error_message(raw)}",
        upstream_status=status,
        deployment=dep,
        retry_after_s=retry_after,
        headers=out_headers,
        code=upstream_code(status, raw),
    )


def transport_error(exc: BaseException, dep: str) -> UpstreamError:
    if isinstance(exc, TimeoutError):
        return UpstreamTimeoutError(f"upstream {dep} timed out", deployment=dep)
    if isinstance(exc, ConnectFailed):
        return UpstreamConnectError(f"cannot connect to upstream {dep}", deployment=dep)
    if isinstance(exc, ConnectionError | OSError):
        return UpstreamConnectError(f"upstream {dep} closed the connection", deployment=dep)
    if isinstance(exc, BadResponse):
        return UpstreamMalformedError(f"upstream {dep} sent an invalid response", deployment=dep)
    if isinstance(exc, UnicodeDecodeError):
        return UpstreamMalformedError(f"upstream {dep} sent invalid UTF-8", deployment=dep)
    return UpstreamConnectError(f"upstream {dep} failed: {type(exc).__name__}", deployment=dep)
