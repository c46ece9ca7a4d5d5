"""The HTTP connection layer under the app: aiohttp's request handler with three additions.

- A per-client-address cap on open connections (`max_connections_per_address`): the next
  connection gets a 429 in JSON and is closed before anything is parsed.
- A header timeout: a client must send a request's line and headers within
  `header_timeout_s` of connecting or of its first byte; a slowloris connection is closed.
- HTTP-parser errors (bad request line, invalid header characters, oversized headers) are
  answered in the API's JSON error format and logged as one line naming the error class:
  aiohttp's default answer is plain text, and its ERROR log line quoted the raw header line,
  `Authorization` included.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from sluice.edge.config import EdgeConfig
from sluice.errors import InvalidRequestError, RateLimitError, SluiceError

log = logging.getLogger("sluice.edge")

_MALFORMED = "malformed HTTP request (the request line or a header could not be parsed)"


def _error_bytes(err: SluiceError, anthropic: bool) -> bytes:
    return orjson.dumps(err.anthropic_body() if anthropic else err.openai_body())


class EdgeRequestHandler(RequestHandler):
    """One connection. Counted per peer address by its `EdgeServer`."""

    __slots__ = ("_armed_at", "_edge", "_header_timer", "_peer", "_start")

    def __init__(self, manager: EdgeServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._edge = manager
        self._peer: str | None = None
        self._armed_at = -1
        self._header_timer: asyncio.TimerHandle | None = None
        self._start = b""  # the first bytes of the current request: its line, for errors

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if isinstance(peer, tuple) and peer else None
        if not self._edge.admit(self._peer):
            refusal = RateLimitError(
                "too many open connections from this address",
                code="too_many_connections",
            )
            body = _error_bytes(refusal, anthropic=False)
            head = (
                "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
            )
            self._peer = None  # not counted
            transport.write(head.encode() + body)  # type: ignore[attr-defined]
            transport.close()
            return
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        if self._peer is not None:
            self._edge.release(self._peer)
            self._peer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        if not self._request_in_progress and not self._messages:
            if self._header_timer is None:
                self._arm()  # the first byte of a new request: its headers must follow in time
            if not self._start:
                self._start = data[:48]
        super().data_received(data)
        if self._request_count != count:
            self._disarm()

    def _arm(self) -> None:
        self._disarm()
        self._start = b""
        self._armed_at = self._request_count
        self._header_timer = self._loop.call_later(
            self._edge.config.header_timeout_s, self._header_deadline
        )

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_deadline(self) -> None:
        self._header_timer = None
        stalled = self._request_count == self._armed_at and not self._request_in_progress
        if stalled and not self._messages:
            log.info("closed a connection from %s: headers not sent in time", self._peer)
            self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Parser errors (4xx) and unexpected handler errors (500), as API JSON. The log line
        names the error's class only: parser messages quote the raw request bytes."""
        if status >= 500:
            log.error("unhandled error from %s: %s", request.remote, type(exc).__name__)
            err: SluiceError = SluiceError("internal error")
        else:
            log.warning("malformed HTTP request from %s: %s", request.remote, type(exc).__name__)
            err = InvalidRequestError(_MALFORMED, code="malformed_http_request")
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot send the error")
        # The request line as received: a request that failed to parse has no path.
        anthropic = b" /v1/messages" in self._start
        resp = web.Response(
            status=status,
            body=_error_bytes(err, anthropic),
            content_type="application/json",
        )
        resp.force_close()
        return resp


class EdgeServer(web.Server):
    """aiohttp's `Server` making `EdgeRequestHandler`s, counting connections per address."""

    def __init__(self, *args: Any, edge: EdgeConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config = edge
        self.per_address: Counter[str] = Counter()

    def admit(self, peer: str | None) -> bool:
        cap = self.config.max_connections_per_address
        if peer is None:
            return True
        if cap and self.per_address[peer] >= cap:
            return False
        self.per_address[peer] += 1
        return True

    def release(self, peer: str) -> None:
        left = self.per_address[peer] - 1
        if left > 0:
            self.per_address[peer] = left
        else:
            del self.per_address[peer]

    def __call__(self) -> RequestHandler:
        return EdgeRequestHandler(self, loop=self._loop, **self._kwargs)


class EdgeRunner(web.AppRunner):
    """`AppRunner` serving through an `EdgeServer`; bodies are decompressed by
    `sluice.edge.body` (bounded), not by the parser."""

    def __init__(self, app: web.Application, edge: EdgeConfig, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", edge.keepalive_timeout_s)
        super().__init__(app, auto_decompress=False, **kwargs)
        self._edge = edge

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return EdgeServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            edge=self._edge,
            **plain._kwargs,
        )
