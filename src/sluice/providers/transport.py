"""The lean HTTP/1.1 keep-alive pool under the opt-in `lean` transport
(`sluice.providers.lean`): asyncio protocols and httptools' C parser, nothing else.

Why it exists: a proxied request's upstream call is the largest piece of the gateway's CPU
per request, and aiohttp's client spends more of it (request and response objects, header
merging, tracing hooks, cookie handling) than this pool does against the same simulator
(BENCHMARKS.md, "Upstream transport"). It is no longer the default: the library client is
(`sluice.providers.aiohttp_client`), with proxies from the environment. This pool knows no
proxies and no HTTP/2.

Failures raise `ConnectFailed` (no connection), `ConnectTimeout` (none within the connect
timeout), `Disconnected` (the peer went away before the response ended) or `BadResponse`
(not HTTP/1.x); other timeouts are the caller's `asyncio.timeout`, and a cancelled or
abandoned response closes its connection. A request is sent at most once.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

Headers = CIMultiDictProxy[str]

_PAUSE_ABOVE = 1 << 20  # bytes buffered for a slow stream reader before we stop reading
# Set here, whatever the caller passes: framing, and only the encodings `Response` decodes.
_SET_BY_US = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)
_DRAINING: set[asyncio.Task[None]] = set()  # strong references to background drains


class ConnectFailed(OSError):
    """No connection could be opened (refused, unresolvable, TLS handshake failed)."""


class ConnectTimeout(TimeoutError, ConnectFailed):
    """No connection within the connect timeout: a timeout (`UpstreamTimeoutError`), not a
    refusal."""


class Disconnected(ConnectionError):
    """The upstream closed the connection before the response was complete."""


class BadResponse(Exception):
    """The upstream's bytes are not a valid HTTP/1.x response."""


ACCEPT_ENCODING = "gzip, deflate"  # every transport asks for what `Inflate` decodes, no more
# The most a compressed upstream body may decode to. A few hundred KB of gzip can decode to
# GBs (a "zip bomb"); no model answer comes near this. An uncompressed body is bounded by the
# bytes the upstream must actually send within the call's deadline.
MAX_INFLATED_BYTES = 64 * 1024 * 1024


class Inflate:
    """A gzip or deflate body's decoder for every transport (the libraries' own decoders
    hand on a compressed body cut short as if it had ended); `end` raises if it was."""

    def __init__(self, gzip: bool, limit: int | None = None) -> None:
        self._z = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
        self._sniff = not gzip  # 'deflate' is zlib-wrapped by the RFC, raw by some servers
        self._empty = True  # no body at all is an empty body (a proxy's labelled 429)
        self._limit = MAX_INFLATED_BYTES if limit is None else limit
        self._left = self._limit  # decoded bytes still allowed

    @staticmethod
    def of(headers: Headers) -> Inflate | None:
        coding = headers.get("content-encoding", "").strip().lower()
        return Inflate(coding == "gzip") if coding in ("gzip", "deflate") else None

    def feed(self, data: bytes) -> bytes:
        if data:
            self._empty = False
        if self._sniff and data:
            self._sniff = False
            if data[0] & 0x0F != 8:  # no zlib header (RFC 1950 CM = 8): raw deflate
                self._z = zlib.decompressobj(wbits=-zlib.MAX_WBITS)
        try:  # never more than the limit in memory, however small the input
            out = self._z.decompress(data, self._left + 1)
        except zlib.error as exc:
            raise BadResponse(f"invalid compressed body: {exc}") from exc
        self._left -= len(out)
        if self._left < 0 or (self._z.unconsumed_tail and self._left == 0):
            raise BadResponse(f"the compressed body decodes to over {self._limit} bytes")
        return out

    def end(self) -> bytes:
        out = self._z.flush()
        if not self._z.eof and not self._empty:
            raise BadResponse("the compressed body is cut short")
        return out


@dataclass(frozen=True, slots=True)
class Target:
    """A URL split once into what a connection and a request line need."""

    secure: bool
    host: str
    port: int
    path: str
    host_header: str

    @staticmethod
    def parse(url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default = port == (443 if secure else 80)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6
        host_header = host if default else f"{host}:{port}"
        return Target(secure, parts.hostname, port, path, host_header)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection; parses one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpResponseParser(self)
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._head: asyncio.Future[Response] | None = None
        self._response: Response | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._head is None:  # bytes nobody asked for: the connection can't be trusted
            self._fail(BadResponse("the upstream sent data with no request outstanding"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(f"invalid HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        response = self._response
        ended_cleanly = exc is None  # a reset cuts such a body short; a clean close ends it
        if (
            response is not None
            and not response.complete
            and response.until_close
            and ended_cleanly
        ):
            response.finish(keep_alive=False)
        else:
            self._fail(Disconnected("the upstream closed the connection"))

    def pause_writing(self) -> None:  # request bodies are small; nothing to pause
        pass

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        headers: CIMultiDict[str] = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in self._raw_headers
        )
        self._raw_headers = []
        status = self._parser.get_status_code()
        if status < 200:  # 1xx: an interim answer, the real one follows
            return
        if self._head is None:  # a second answer to one request: never reuse this connection
            self._fail(BadResponse("the upstream sent an answer no request asked for"))
            return
        response = Response(self, status, CIMultiDictProxy(headers))
        self._response = response
        if self._head is not None and not self._head.done():
            self._head.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None and not self._response.complete:
            self._response.feed(body)

    def on_message_complete(self) -> None:
        self._raw_headers = []  # a chunked body's trailers: not the next answer's headers
        if self._response is not None:
            self._head = None  # idle until the next request
            self._response.finish(keep_alive=self._parser.should_keep_alive())

    # -- used by the pool
    def send(self, head: bytes, body: bytes) -> asyncio.Future[Response]:
        if self.transport is None:
            raise Disconnected("the connection is not open")
        self._head = self._loop.create_future()
        self._response = None
        self.transport.write(head + body)
        return self._head

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self._head is not None and not self._head.done():
            self._head.set_exception(exc)
        if self._response is not None:
            self._response.fail(exc)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Response:
    """A response whose headers have arrived; read its body once, with `read` or `chunks`.
    `release` (always, in a finally) returns the connection to the pool or closes it."""

    def __init__(self, conn: _Connection, status: int, headers: Headers) -> None:
        self.status = status
        self.headers = headers
        self.complete = False
        encoding = headers.get("transfer-encoding", "").lower()
        self.until_close = "content-length" not in headers and "chunked" not in encoding
        self._conn = conn
        self._keep_alive = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._release: Callable[[_Connection, bool], None] | None = None
        self._paused = False
        self._streamed = False  # read through `chunks`: only then may reading pause
        self._inflate = Inflate.of(headers)

    # -- fed by the connection
    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if (
            self._streamed
            and self._buffered > _PAUSE_ABOVE
            and not self._paused
            and self._conn.transport
        ):
            self._paused = True
            self._conn.transport.pause_reading()
        self._wake()

    def finish(self, keep_alive: bool) -> None:
        self.complete = True
        self._keep_alive = keep_alive
        self._wake()

    def fail(self, exc: Exception) -> None:
        if not self.complete:
            self._error = exc
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- read by the caller
    async def read(self) -> bytes:
        while not self.complete:
            if self._error is not None:
                raise self._error
            await self._wait()
        data = b"".join(self._chunks)
        self._chunks.clear()
        return self._decode(data, final=True)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in the pieces the network delivered (one per read, decompressed)."""
        self._streamed = True
        while True:
            if self._chunks:
                data = b"".join(self._chunks)
                self._chunks.clear()
                self._buffered = 0
                self._resume()
                out = self._decode(data, final=False)
                if out:
                    yield out
            elif self.complete:
                tail = self._decode(b"", final=True)
                if tail:
                    yield tail
                return
            else:
                await self._wait()

    async def _wait(self) -> None:
        """Until more body, the end, or a failure; raises the failure once nothing that
        arrived before it is left to hand out."""
        if self._error is None:
            self._waiter = self._conn._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        error = self._error
        if error is not None and not self._chunks:
            raise error

    def _resume(self) -> None:
        if self._paused and self._conn.transport and not self._conn.closed:
            self._paused = False
            self._conn.transport.resume_reading()

    def _decode(self, data: bytes, final: bool) -> bytes:
        if self._inflate is None:
            return data
        out = self._inflate.feed(data)
        return out + self._inflate.end() if final else out

    def release_when_done(self, within_s: float) -> None:
        """Release once the body has ended, waiting for that at most `within_s` in the
        background. For a reader that stopped at the last event it needed: the end of a
        chunked body often arrives a moment after the last event, and without it the
        connection could not be reused."""
        if self.complete or self._error is not None or self._conn.closed:
            self.release()
            return
        task = self._conn._loop.create_task(self._finish_then_release(within_s))
        _DRAINING.add(task)
        task.add_done_callback(_DRAINING.discard)

    async def _finish_then_release(self, within_s: float) -> None:
        try:
            async with asyncio.timeout(within_s):
                while not self.complete:
                    self._chunks.clear()  # nobody reads these any more
                    self._buffered = 0
                    self._resume()
                    await self._wait()
        except Exception:  # timed out or failed: release() closes it
            pass
        finally:
            self.release()

    def release(self) -> None:
        self._resume()  # never hand on a paused connection
        if self._release is not None:
            release, self._release = self._release, None
            release(self._conn, self.complete and self._keep_alive and not self._conn.closed)


Key = tuple[str, int, bool]  # host, port, TLS


class Pool:
    """Keep-alive connections to any number of hosts, at most `limit` open per host; callers
    beyond that wait, first come first served: a returned connection (or the slot of a closed
    one) is handed to the longest waiter. Idle connections older than `keepalive_s` are not
    reused."""

    def __init__(
        self, limit: int, keepalive_s: float = 30.0, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._limit = limit
        self._keepalive_s = keepalive_s
        self._idle: dict[Key, list[_Connection]] = {}
        self._open: dict[Key, int] = {}  # slots taken: connections open or being opened
        self._waiters: dict[Key, deque[asyncio.Future[_Connection | None]]] = {}
        self._targets: dict[str, Target] = {}
        self._ssl = ssl_context  # None: the system's trusted CAs, made on first https use
        self.closed = False

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, connect_timeout: float
    ) -> Response:
        """Send a POST and return once the response's status and headers are in."""
        if self.closed:
            raise Disconnected("the connection pool is closed")
        target = self._targets.get(url)
        if target is None:
            target = self._targets[url] = Target.parse(url)
        head = _request_head(target, headers, len(body))
        key = (target.host, target.port, target.secure)
        conn = await self._acquire(key, target, connect_timeout)
        try:
            response = await conn.send(head, body)
        except BaseException:
            # Sent at most once, even when a reused connection was being closed as idle as
            # we sent: a second copy would be an upstream call nobody counts. The caller's
            # retry policy decides, and its retry shows in x-sluice-attempts and records.
            self._give_back(key, conn, reusable=False)
            raise
        response._release = lambda c, reusable: self._give_back(key, c, reusable)
        return response

    async def close(self) -> None:
        self.closed = True
        for key, conns in self._idle.items():
            for conn in conns:
                conn.abort()
            self._open[key] = self._open.get(key, 0) - len(conns)
        self._idle.clear()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(Disconnected("the connection pool is closed"))
        self._waiters.clear()

    async def _acquire(self, key: Key, target: Target, connect_s: float) -> _Connection:
        """A connection to the target: an idle one, a handed-over one, or a new one."""
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._keepalive_s:
                return conn
            conn.abort()
            self._open[key] -= 1
        if self._open.get(key, 0) < self._limit:
            self._open[key] = self._open.get(key, 0) + 1
        else:
            handed = await self._wait_turn(key)
            if handed is not None and not handed.closed:
                return handed
            # A free slot (or a connection that died on the way): ours to open anew.
        try:
            return await self._connect(target, connect_s)
        except BaseException:
            self._free_slot(key)
            raise

    async def _wait_turn(self, key: Key) -> _Connection | None:
        waiter: asyncio.Future[_Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, deque()).append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # handed over as we were cancelled
                handed = waiter.result()
                if handed is not None:
                    self._give_back(key, handed, reusable=not handed.closed)
                else:
                    self._free_slot(key)
            raise

    async def _connect(self, target: Target, connect_s: float) -> _Connection:
        loop = asyncio.get_running_loop()
        context = None
        if target.secure:
            context = self._ssl = self._ssl or ssl.create_default_context()
        try:
            async with asyncio.timeout(connect_s):
                _, conn = await loop.create_connection(
                    _Connection,
                    target.host,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if context else None,
                )
        except TimeoutError as exc:
            raise ConnectTimeout(f"no connection to {target.host}:{target.port} in time") from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {target.host}:{target.port}: {exc}") from exc
        return conn

    def _give_back(self, key: Key, conn: _Connection, reusable: bool) -> None:
        if not reusable or self.closed or conn.closed:
            conn.abort()
            self._free_slot(key)
            return
        conn.idle_since = time.monotonic()
        waiter = self._next_waiter(key)
        if waiter is not None:
            waiter.set_result(conn)
        else:
            self._idle.setdefault(key, []).append(conn)

    def _free_slot(self, key: Key) -> None:
        """A slot was given up: the longest waiter takes it over, else it is free."""
        waiter = self._next_waiter(key)
        if waiter is not None:
            waiter.set_result(None)
        else:
            self._open[key] -= 1

    def _next_waiter(self, key: Key) -> asyncio.Future[_Connection | None] | None:
        waiters = self._waiters.get(key)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                return waiter
        return None


def _request_head(target: Target, headers: dict[str, str], length: int) -> bytes:
    lines = [
        f"POST {target.path} HTTP/1.1\r\nhost: {target.host_header}\r\n"
        f"content-length: {length}\r\naccept-encoding: {ACCEPT_ENCODING}\r\n"
    ]
    for name, value in headers.items():
        if name.lower() in _SET_BY_US:
            continue
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1", "replace")
