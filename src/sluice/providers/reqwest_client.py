"""The `pyreqwest` transport: Rust's reqwest/hyper client (the `pyreqwest` package, a
well-kept library) behind the `UpstreamTransport` seam. Opt-in per provider
(`transport: pyreqwest`, extra `sluice[reqwest]`); measured against the other two in
BENCHMARKS.md ("Round 4").

- Proxies from the environment (HTTP_PROXY / HTTPS_PROXY / ALL_PROXY / NO_PROXY), read by
  reqwest when the client is built; TLS with the system's trusted roots; HTTP/2 by ALPN.
- One client per provider, made lazily (a closed one is replaced on next use); at most
  `max_connections` requests in flight through it (reqwest bounds a client, not a host: a
  provider has one origin), idle connections kept 30 s.
- Timeouts: `connect_s` bounds the TCP/TLS connect (reqwest's, per client: one client per
  distinct `connect_s`), the rest is ours as in the other transports (`total_s` for a whole
  answer; `ttft_s`, `idle_s`, `total_s` for a stream, in `sse_stream`).
- A POST is sent at most once: reqwest does not retry requests on a connection that drops.
- Cancellation (a client that went away, a deadline) drops the Rust request future, which
  closes its connection; a stream left before its end is closed, not returned to the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy
from pyreqwest import exceptions as rx
from pyreqwest.client import Client, ClientBuilder
from pyreqwest.request import StreamRequest
from pyreqwest.response import Response

from sluice.config import TimeoutConfig
from sluice.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamMalformedError,
    UpstreamTimeoutError,
)
from sluice.providers.http import (
    TRAILING_END_S,
    SSEEvent,
    parse_json,
    sse_stream,
    status_error,
    transport_error,
)
from sluice.providers.transport import ACCEPT_ENCODING, Headers, Inflate


class ReqwestTransport:
    def __init__(self, name: str, max_connections: int) -> None:
        self.name = name
        self._max_connections = max_connections
        self._clients: dict[float, Client] = {}  # by connect_s
        self._tasks: set[asyncio.Task[None]] = set()  # stream closes and drains
        self._closed = False

    def client(self, connect_s: float) -> Client:
        found = self._clients.get(connect_s)
        if found is None or self._closed:
            self._closed = False
            found = self._clients[connect_s] = (
                ClientBuilder()
                .max_connections(self._max_connections)
                .pool_max_idle_per_host(self._max_connections)
                .pool_idle_timeout(timedelta(seconds=30))
                .connect_timeout(timedelta(seconds=connect_s))
                .error_for_status(False)
                .follow_redirects(False)
                .default_cookie_store(False)  # no state between tenants' calls
                # Decompressed here (`Inflate`), not by reqwest: its decoder hands on a gzip
                # body cut short as if it had ended.
                .gzip(False)
                .deflate(False)
                .brotli(False)
                .zstd(False)
                .build()
            )
        return found

    async def close(self) -> None:
        """Stop the background drains (their connections close), then the clients."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        clients, self._clients = list(self._clients.values()), {}
        self._closed = True
        for client in clients:
            await client.close()

    def _request(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig
    ) -> Any:
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} holds a line break")
        if "accept-encoding" in headers:  # forwarded: `header` would add ours beside it
            headers = {k: v for k, v in headers.items() if k != "accept-encoding"}
        return (
            self.client(timeouts.connect_s)
            .post(url)
            .headers(headers)
            .header("accept-encoding", ACCEPT_ENCODING)
            # reqwest's own deadline too: a Python timeout or cancellation does not stop a
            # request under way (its connection stays open, the upstream goes on generating)
            .timeout(timedelta(seconds=timeouts.total_s))
            .body_bytes(body)
        )

    def _streamed(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig
    ) -> StreamRequest:
        # pyreqwest buffers a streamed body up to this many bytes before handing any on (64
        # KiB by default, which would hold back a stream's events): 0 passes every network
        # read on as it comes, and returns the response at its headers.
        request: StreamRequest = (
            self._request(url, headers, body, timeouts)
            .streamed_read_buffer_limit(0)
            .build_streamed()
        )
        return request

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig, dep: str
    ) -> tuple[Headers, Any]:
        """POST and return (headers, parsed JSON body); error statuses raise."""
        try:
            async with asyncio.timeout(timeouts.total_s):
                resp = await self._request(url, headers, body, timeouts).build().send()
                raw = (await resp.bytes()).to_bytes()
            head = _headers(resp)
            inflate = Inflate.of(head)
            if inflate is not None:
                raw = inflate.feed(raw) + inflate.end()
        except Exception as exc:
            raise _error(exc, dep) from exc
        if resp.status >= 400:
            raise status_error(resp.status, head, raw, dep)
        return head, parse_json(raw, dep)

    def open_stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig, dep: str
    ) -> AbstractAsyncContextManager[tuple[Headers, AsyncIterator[list[SSEEvent]]]]:
        """POST and yield (headers, SSE events: one list per network read); the deadlines
        and failures as in `sse_stream`."""

        async def send() -> _Streamed:
            request = self._streamed(url, headers, body, timeouts)
            return _Streamed(request, await request.__aenter__())  # cancelled: nothing open

        def done(resp: _Streamed, read_to_the_end: bool) -> None:
            # Read to its last event: the body's end may trail in (then the connection is
            # kept); else closed at once, so the upstream stops generating.
            if resp.ended:  # the body is over and its connection back in the pool
                return
            task = asyncio.get_running_loop().create_task(resp.finish(read_to_the_end))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return sse_stream(send, lambda resp: resp.chunks(dep), done, timeouts, dep, _error)


class _Streamed:
    """A streamed response as `sse_stream` reads it."""

    def __init__(self, request: StreamRequest, response: Response) -> None:
        self._request = request
        self._response = response
        self.status = response.status
        self.headers = _headers(response)
        self._inflate = Inflate.of(self.headers)
        self.ended = False

    async def read(self) -> bytes:
        raw = (await self._response.bytes()).to_bytes()
        return raw if self._inflate is None else self._inflate.feed(raw) + self._inflate.end()

    async def chunks(self, dep: str) -> AsyncIterator[bytes]:
        """The body in the pieces the network delivered (decompressed)."""
        reader = self._response.body_reader
        inflate = self._inflate
        try:
            while (chunk := await reader.read_chunk()) is not None:
                yield chunk.to_bytes() if inflate is None else inflate.feed(chunk.to_bytes())
            self.ended = True
            if inflate is not None:
                yield inflate.end()
        except Exception as exc:
            raise _error(exc, dep) from exc

    async def finish(self, read_to_the_end: bool) -> None:
        try:
            if read_to_the_end:
                reader = self._response.body_reader
                async with asyncio.timeout(TRAILING_END_S):
                    while await reader.read_chunk() is not None:
                        pass
        except Exception:  # timed out or failed: closed below, not reused
            pass
        finally:
            await self._request.__aexit__(None, None, None)


def _headers(response: Response) -> Headers:
    return CIMultiDictProxy(CIMultiDict(response.headers.items()))


def _error(exc: BaseException, dep: str) -> UpstreamError:
    """pyreqwest's failures as Sluice's typed upstream errors."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, rx.ConnectTimeoutError):
        return UpstreamTimeoutError(f"upstream {dep} timed out connecting", deployment=dep)
    if isinstance(exc, rx.ConnectError):
        return UpstreamConnectError(f"cannot connect to upstream {dep}", deployment=dep)
    if isinstance(exc, rx.RequestTimeoutError):
        return UpstreamTimeoutError(f"upstream {dep} timed out", deployment=dep)
    if isinstance(exc, rx.DecodeError):
        # A body cut short (its Content-Length or chunked end not reached) is a closed
        # connection; anything else (a bad compressed body) is malformed.
        causes = " ".join(str(c.get("message", "")) for c in exc.details.get("causes") or [])
        if "end of file" in causes or "connection" in causes:
            return UpstreamConnectError(f"upstream {dep} closed the connection", deployment=dep)
        return UpstreamMalformedError(f"upstream {dep} sent an invalid body", deployment=dep)
    if isinstance(exc, rx.NetworkError):
        return UpstreamConnectError(f"upstream {dep} closed the connection", deployment=dep)
    if isinstance(exc, rx.RequestError):  # not a valid HTTP response
        return UpstreamMalformedError(f"upstream {dep} sent an invalid response", deployment=dep)
    return transport_error(exc, dep)
