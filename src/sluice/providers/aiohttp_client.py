"""The default transport: aiohttp's client (a well-kept library) behind the
`UpstreamTransport` seam.

- Proxies from the environment: HTTP_PROXY / HTTPS_PROXY / NO_PROXY, as users of LiteLLM,
  Portkey and the vendors' SDKs expect. Looked up once per upstream origin, not per request:
  aiohttp's `trust_env=True` reads the environment and ~/.netrc on every request, which cost
  ~500 µs of CPU per call (measured: 771 to 928 µs per call with it, 323 to 329 µs without, against
  the simulator in one process; BENCHMARKS.md).
- One `ClientSession` per provider, made lazily inside the event loop (a closed one is
  replaced on next use); at most `max_connections` connections per host, kept alive 30 s.
- Timeouts: `connect_s` bounds the TCP/TLS connect (`sock_connect`), the rest is ours
  (`total_s` for a whole answer; `ttft_s`, `idle_s`, `total_s` for a stream).
- A POST is sent at most once: aiohttp retries only idempotent methods on a dropped
  keep-alive connection, so a retry is always the executor's, and counted.
- Failures are mapped at this boundary to the typed `UpstreamError`s of `sluice.errors`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from aiohttp.http_exceptions import ContentEncodingError
from yarl import URL

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


class AiohttpTransport:
    def __init__(self, name: str, max_connections: int) -> None:
        self.name = name
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._draining: set[asyncio.Task[None]] = set()  # see _release_when_done
        self._proxies: dict[str, tuple[URL | None, aiohttp.BasicAuth | None]] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=0, limit_per_host=self._max_connections, keepalive_timeout=30.0
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,  # proxies: `_proxy`, once per origin
                timeout=aiohttp.ClientTimeout(total=None),  # ours: see post / open_stream
                cookie_jar=aiohttp.DummyCookieJar(),  # no state between tenants' calls
                skip_auto_headers=("User-Agent",),
                auto_decompress=False,  # ours (`Inflate`): aiohttp's passes a cut body on
                # and only what `Inflate` decodes (aiohttp's default adds br, zstd if installed)
                headers={"accept-encoding": ACCEPT_ENCODING},
            )
        return self._session

    async def close(self) -> None:
        """Stop the background drains (their connections close), then the session."""
        drains = list(self._draining)
        for task in drains:
            task.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _send(self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig) -> Any:
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name!r} holds a line break")
        if "accept-encoding" in headers:  # forwarded: only what `Inflate` decodes
            headers = {**headers, "accept-encoding": ACCEPT_ENCODING}
        proxy, proxy_auth = self._proxy(url)
        return self.session().post(
            url,
            data=body,
            headers=headers,
            proxy=proxy,
            proxy_auth=proxy_auth,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect_s),
            allow_redirects=False,
        )

    def _proxy(self, url: str) -> tuple[URL | None, aiohttp.BasicAuth | None]:
        """The environment's proxy for this URL's origin (HTTP(S)_PROXY, NO_PROXY), or none."""
        target = URL(url)
        origin = f"{target.scheme}://{target.host}:{target.port}"
        found = self._proxies.get(origin)
        if found is None:
            try:
                found = get_env_proxy_for_url(target)
            except LookupError:
                found = (None, None)
            self._proxies[origin] = found
        return found

    async def post(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig, dep: str
    ) -> tuple[Headers, Any]:
        """POST and return (headers, parsed JSON body); error statuses raise."""
        try:
            async with (
                asyncio.timeout(timeouts.total_s),
                self._send(url, headers, body, timeouts) as resp,
            ):
                raw = await resp.read()
            inflate = Inflate.of(resp.headers)
            if inflate is not None:
                raw = inflate.feed(raw) + inflate.end()
        except Exception as exc:
            raise _error(exc, dep) from exc
        if resp.status >= 400:
            raise status_error(resp.status, resp.headers, raw, dep)
        return resp.headers, parse_json(raw, dep)

    def open_stream(
        self, url: str, headers: dict[str, str], body: bytes, timeouts: TimeoutConfig, dep: str
    ) -> AbstractAsyncContextManager[tuple[Headers, AsyncIterator[list[SSEEvent]]]]:
        """POST and yield (headers, SSE events: one list per network read); the deadlines
        and failures as in `sse_stream`."""

        async def send() -> _Answer:
            return _Answer(await self._send(url, headers, body, timeouts))

        def done(answer: _Answer, read_to_the_end: bool) -> None:
            if read_to_the_end:  # keep the connection once the body's end trails in
                self._release_when_done(answer.resp)
            else:  # abandoned or failed: close it, so the upstream stops generating
                answer.resp.close()

        return sse_stream(
            send, lambda answer: _chunks(answer.resp, dep), done, timeouts, dep, _error
        )

    def _release_when_done(self, resp: aiohttp.ClientResponse) -> None:
        """Return the connection once the body's end has arrived (waiting at most
        TRAILING_END_S in the background): a reader stops at the last event it needs, and
        the end of a chunked body often comes a moment later. Unended, it is closed."""
        if resp.content.at_eof():
            resp.release()
            return

        async def drain() -> None:
            ended = False
            try:
                async with asyncio.timeout(TRAILING_END_S):
                    while await resp.content.readany():
                        pass
                ended = True
            except Exception:  # timed out or failed: not reusable
                pass
            finally:
                if ended:
                    resp.release()
                else:
                    resp.close()

        task = asyncio.get_running_loop().create_task(drain())
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)


class _Answer:
    """A streamed answer as `sse_stream` reads it: an error status's body decompressed."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.status = resp.status
        self.headers = resp.headers

    async def read(self) -> bytes:
        raw = await self.resp.read()
        inflate = Inflate.of(self.headers)
        return raw if inflate is None else inflate.feed(raw) + inflate.end()


async def _chunks(resp: aiohttp.ClientResponse, dep: str) -> AsyncIterator[bytes]:
    """The body in the pieces the network delivered (decompressed)."""
    inflate = Inflate.of(resp.headers)
    try:
        async for chunk in resp.content.iter_any():
            yield chunk if inflate is None else inflate.feed(chunk)
        if inflate is not None:
            yield inflate.end()
    except Exception as exc:
        raise _error(exc, dep) from exc


def _error(exc: BaseException, dep: str) -> UpstreamError:
    """aiohttp's failures as Sluice's typed upstream errors."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeoutError(f"upstream {dep} timed out connecting", deployment=dep)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectError(f"cannot connect to upstream {dep}", deployment=dep)
    if isinstance(exc, aiohttp.ClientPayloadError):
        # A bad compressed body (Content-Encoding) is malformed; a body cut short (its
        # chunked Transfer-Encoding or Content-Length not satisfied) is a closed connection.
        cause = exc.__cause__ or exc.__context__
        text = f"{exc} {cause}".lower()
        if isinstance(cause, ContentEncodingError) or "content-encoding" in text:
            return UpstreamMalformedError(
                f"upstream {dep} sent an invalid compressed body", deployment=dep
            )
        return UpstreamConnectError(f"upstream {dep} closed the connection", deployment=dep)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamConnectError(f"upstream {dep} closed the connection", deployment=dep)
    if isinstance(exc, aiohttp.ClientResponseError):  # not a valid HTTP response
        return UpstreamMalformedError(f"upstream {dep} sent an invalid response", deployment=dep)
    return transport_error(exc, dep)
