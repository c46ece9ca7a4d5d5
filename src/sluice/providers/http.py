"""The seam under the provider adapters: the `UpstreamTransport` Protocol, what every
transport shares (SSE parsing, stream deadlines, failures mapped to typed errors), and
`make_transport` choosing one by the provider's `transport:` setting.

Three transports satisfy it:
- `aiohttp` (default, `sluice.providers.aiohttp_client`): aiohttp's client, a well-kept
  library; honours HTTP(S)_PROXY / NO_PROXY (`trust_env`).
- `lean` (opt-in, `sluice.providers.lean`): Sluice's own HTTP/1.1 pool on httptools
  (`sluice.providers.transport`); less CPU per call (BENCHMARKS.md), no proxy support.
- `pyreqwest` (opt-in, extra `reqwest`, `sluice.providers.reqwest_client`): Rust's reqwest
  through the `pyreqwest` package; proxies from the environment.
All run the same test suite (tests/unit/test_upstream_transports.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

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
from sluice.providers.transport import (
    BadResponse,
    ConnectFailed,
    ConnectTimeout,
    Headers,
)
from sluice.providers.upstream_codes import upstream_code


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    data: str


# How long a stream read to its last event may take to end its HTTP body, in the background,
# before its connection is closed instead of reused.
TRAILING_END_S = 2.0

# Yielded after the events of each network read (see `sluice.types.Flush`).
READ_BOUNDARY = SSEEvent("sluice.read-boundary", "")


class UpstreamTransport(Protocol):
    """How a provider adapter reaches its upstream: one pooled client per provider.

    `post` returns (headers, parsed JSON body); `open_stream` yields (headers, SSE event
    batches): the events of each network read in a list (`sse_batches`). Both raise only
    `UpstreamError` subclasses: error statuses as `UpstreamStatusError`, timeouts (connect
    included) as `UpstreamTimeoutError`, no connection or a dropped one as
    `UpstreamConnectError`, bytes that are not HTTP/JSON as `UpstreamMalformedError`. A
    transport sends each request at most once: a retry is the executor's decision, counted
    in `x-sluice-attempts`."""

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig, dep: str
    ) -> tuple[Headers, Any]: ...

    def open_stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig, dep: str
    ) -> AbstractAsyncContextManager[tuple[Headers, AsyncIterator[list[SSEEvent]]]]: ...

    async def close(self) -> None: ...


TransportKind = Literal["aiohttp", "lean", "pyreqwest"]


def make_transport(kind: TransportKind, name: str, max_connections: int) -> UpstreamTransport:
    """The transport a provider's config names (`transport:`; aiohttp unless told)."""
    if kind == "lean":
        from sluice.providers.lean import LeanTransport

        return LeanTransport(name, max_connections)
    if kind == "pyreqwest":
        from sluice.providers.reqwest_client import ReqwestTransport

        return ReqwestTransport(name, max_connections)
    from sluice.providers.aiohttp_client import AiohttpTransport

    return AiohttpTransport(name, max_connections)


class _StreamResponse(Protocol):
    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Headers: ...

    async def read(self) -> bytes: ...


R = TypeVar("R", bound=_StreamResponse)


@asynccontextmanager
async def sse_stream(
    send: Callable[[], Awaitable[R]],
    chunks: Callable[[R], AsyncIterator[bytes]],
    done: Callable[[R, bool], None],
    timeouts: TimeoutConfig,
    dep: str,
    error: Callable[[BaseException, str], UpstreamError],
) -> AsyncIterator[tuple[Headers, AsyncIterator[list[SSEEvent]]]]:
    """What both transports' `open_stream` do around their own client: `send` the POST by
    ttft_s; an error status is read (within idle_s) and raised; else yield (headers, SSE
    batches) with the first read by ttft_s, each later one within idle_s, all within
    total_s. `done(resp, read_to_the_end)` then keeps or drops the connection; `error` maps
    the client's own failures to typed upstream errors."""
    loop = asyncio.get_running_loop()
    first_by, deadline = stream_deadlines(timeouts)
    try:
        async with asyncio.timeout_at(first_by):
            resp = await send()
    except Exception as exc:
        raise error(exc, dep) from exc
    read_to_the_end = False
    try:
        if resp.status >= 400:
            async with asyncio.timeout_at(min(loop.time() + timeouts.idle_s, deadline)):
                raw = await resp.read()
            raise status_error(resp.status, resp.headers, raw, dep)
        reads = timed(chunks(resp), first_by, timeouts.idle_s, deadline)
        yield resp.headers, sse_batches(reads, dep)
        read_to_the_end = True  # the adapter saw the stream's last event
    except UpstreamError:
        raise
    except Exception as exc:
        raise error(exc, dep) from exc
    finally:
        done(resp, read_to_the_end)


def stream_deadlines(timeouts: TimeoutConfig) -> tuple[float, float]:
    """(first_by, deadline) in loop time: the first event within ttft_s, all within total_s."""
    started = asyncio.get_running_loop().time()
    deadline = started + timeouts.total_s
    return min(started + timeouts.ttft_s, deadline), deadline


async def timed(
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


async def sse_batches(
    chunks: AsyncIterator[bytes], dep: str
) -> AsyncGenerator[list[SSEEvent], None]:
    """SSE events from the body, one list per network read (perhaps empty): one await per
    read, not per event or line."""
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
            # Walk the read with an offset and keep only the unfinished rest: slicing the
            # remaining buffer after each event copied a large read once per event.
            start = 0
            batch: list[SSEEvent] = []
            while (end := buffer.find(b"\n\n", start)) >= 0:
                block = buffer[start:end]
                start = end + 2
                if block[:6] == b"data: " and b"\n" not in block:  # the usual event, inline
                    batch.append(SSEEvent(None, block[6:].decode("utf-8")))
                elif (event := _parse_block(block)) is not None:
                    batch.append(event)
            buffer = buffer[start:] if start else buffer
            yield batch
        event = _parse_block(buffer.rstrip(b"\r\n"))
        if event is not None:
            yield [event]
    except UpstreamError:
        raise
    except Exception as exc:
        raise transport_error(exc, dep) from exc


async def sse_events(chunks: AsyncIterator[bytes], dep: str) -> AsyncIterator[SSEEvent]:
    """`sse_batches` one event at a time, with a READ_BOUNDARY after each network read."""
    batches = sse_batches(chunks, dep)
    try:
        async for batch in batches:
            for event in batch:
                yield event
            yield READ_BOUNDARY
    finally:
        await batches.aclose()


def _parse_block(block: bytes) -> SSEEvent | None:
    if block.startswith(b"data:") and b"\n" not in block:  # the usual one-line event
        return SSEEvent(None, block[6 if block.startswith(b"data: ") else 5 :].decode("utf-8"))
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


def parse_json(raw: bytes, dep: str) -> Any:
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
        raise event_not_json(dep) from exc


def event_not_json(dep: str) -> UpstreamMalformedError:
    return UpstreamMalformedError(
        f"upstream {dep} sent a stream event that is not JSON", deployment=dep
    )


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
    if isinstance(exc, ConnectTimeout):
        return UpstreamTimeoutError(f"upstream {dep} timed out connecting", deployment=dep)
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
