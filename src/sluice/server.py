"""The thin HTTP surface: an aiohttp app built in a factory, no module-level state.

Handlers decode the caller's wire format, run the pipeline, and encode the answer (JSON or
SSE) in the same wire format. Every answer carries `x-sluice-request-id`,
`x-sluice-deployment` and `x-sluice-latency-ms`; every error is in the caller's format.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal

import orjson
from aiohttp import web

from sluice.config import SluiceConfig
from sluice.edge.body import read_json
from sluice.edge.protocol import EdgeRunner
from sluice.errors import (
    InternalError,
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
    SluiceError,
)
from sluice.frontends.anthropic import ANTHROPIC_FRONTEND
from sluice.frontends.base import Frontend
from sluice.frontends.openai import OPENAI_FRONTEND
from sluice.gateway import Gateway
from sluice.identity import Credentials
from sluice.observe.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from sluice.observe.recorder import call_cost
from sluice.observe.records import CACHE_HITS
from sluice.observe.worker_metrics import WorkerMetrics
from sluice.observe.worker_metrics import from_env as worker_metrics_from_env
from sluice.pipeline.context import (
    CallContext,
)
from sluice.providers.forwarding import HeaderFilter
from sluice.types import FLUSH, CallMeta, ChatResponse, EventStream, StreamEvent, next_batch
from sluice.web import batches as batches_api
from sluice.web import cache_admin, info, keys_admin
from sluice.web import feedback as feedback_api
from sluice.web import files as files_api
from sluice.web import jobs as jobs_api
from sluice.web import vector_stores as vector_stores_api
from sluice.web.access import check_access, install_access
from sluice.web.alerts import ENDPOINT as ALERTS_ENDPOINT
from sluice.web.alerts import install as install_alerts
from sluice.web.appkeys import GATEWAY
from sluice.web.endpoints import install as install_endpoints
from sluice.web.eval_ui import install as install_eval_ui
from sluice.web.ui import install as install_ui

log = logging.getLogger("sluice")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_CAPTURED_HEADERS = frozenset({"traceparent", "idempotency-key", "anthropic-beta"})
CLIENT_CLOSED = 499  # nginx's status for "the client closed the connection first"
_JSON = "application/json"

__all__ = ["GATEWAY", "create_app", "start", "start_app"]  # GATEWAY: from sluice.web.appkeys


def _request_id(request: web.Request) -> str:
    given = request.headers.get("x-sluice-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    # Unique, not secret: the module's generator (reseeded in forked children) costs no
    # system call, unlike uuid4's os.urandom. Time first (milliseconds, as in UUIDv7), so ids
    # sort by time and the records store's request-id index grows at one end: random ids
    # dirtied a different index page per row, and the SQLite writer's I/O with it.
    return f"req_{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"


def _error_response(
    err: SluiceError,
    frontend: Frontend,
    request_id: str,
    started: float,
    ctx: CallContext | None = None,
) -> web.Response:
    headers = {
        **err.headers,
        "x-sluice-request-id": request_id,
        frontend.request_id_header: request_id,
        "x-sluice-latency-ms": _elapsed_ms(started),
    }
    if ctx is not None:
        headers.update(ctx.response_headers)
        headers.update(_plan_headers(ctx))
    return web.Response(
        status=err.http_status,
        body=orjson.dumps(frontend.error_body(err)),
        content_type=_JSON,
        headers=headers,
    )


def _plan_headers(ctx: CallContext) -> dict[str, str]:
    headers = {
        "x-sluice-attempts": str(ctx.attempts),
        "x-sluice-fallback": "true" if ctx.fallback else "false",
    }
    hit = ctx.cache_status in CACHE_HITS
    if hit:
        headers["x-sluice-deployment"] = "cache"
    elif ctx.deployment is not None:
        headers["x-sluice-deployment"] = ctx.deployment.id
    if not ctx.request.stream:  # a stream's cost is known only at its end (the record)
        cost = Decimal(0) if hit else call_cost(ctx)
        headers["x-sluice-cost-usd"] = "unknown" if cost is None else f"{cost:f}"
    if ctx.degraded:
        headers["x-sluice-degraded"] = "true"
    return headers


def _elapsed_ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.2f}"


def _call_meta(
    request: web.Request, request_id: str, frontend: Frontend, forwarded: HeaderFilter
) -> CallMeta:
    sluice_headers = {
        k.lower(): v
        for k, v in request.headers.items()
        if k.lower().startswith("x-sluice-") or k.lower() in _CAPTURED_HEADERS
    }
    return CallMeta(
        request_id=request_id,
        wire=frontend.wire,
        headers=sluice_headers,
        forward_headers=forwarded.select(request.headers) if forwarded else {},
    )


def chat_endpoint(frontend: Frontend) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    serve = _chat_handler(frontend)

    async def handle(request: web.Request) -> web.StreamResponse:
        gateway = request.app[GATEWAY]
        gateway.active_calls += 1  # what a drain waits for (`drain`)
        try:
            tracing = gateway.tracing
            if not tracing.enabled:
                return await serve(request)
            with tracing.request_span(f"{request.method} {request.path}", request.headers) as span:
                response = await serve(request)
                if span is not None:
                    span.set_attribute("http.response.status_code", response.status)
                return response
        finally:
            gateway.active_calls -= 1

    return handle


def _chat_handler(
    frontend: Frontend,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        started, wall_start = time.perf_counter(), time.time()
        gateway = request.app[GATEWAY]
        request_id = _request_id(request)
        ctx: CallContext | None = None

        def finish(status: int, error_type: str | None = None) -> None:
            gateway.recorder.finish(
                ctx,
                request_id=request_id,
                started=started,
                wall_start=wall_start,
                status=status,
                error_type=error_type,
            )

        try:
            if not gateway.ready:  # draining: load balancers see /readyz 503 meanwhile
                raise ServiceUnavailableError(
                    "this gateway is shutting down; retry on another replica",
                    code="shutting_down",
                    headers={"retry-after": "1", "connection": "close"},
                )
            # Authenticated before the body is read (a caller without a valid key learns
            # nothing about its body); the auth stage takes the result as it is.
            identity = await gateway.authenticate(request.headers)
            cfg = gateway.config.server
            body = await read_json(request, cfg.max_body_bytes, cfg.edge)
            meta = _call_meta(request, request_id, frontend, gateway.forwarded)
            request_ = frontend.decode_request(body, meta)
            ctx = CallContext(request_, started, credentials=Credentials(resolved=identity))
            result = await gateway.handler(ctx)
        except SluiceError as err:
            # Breaker fast-fails are expected during an outage: one line each at INFO.
            level = logging.INFO if isinstance(err, ServiceUnavailableError) else logging.WARNING
            if err.http_status >= 500:
                log.log(level, "request %s failed: %s", request_id, err.message)
            finish(err.http_status, err.code)
            return _error_response(err, frontend, request_id, started, ctx)
        except asyncio.CancelledError:
            finish(CLIENT_CLOSED, "client_disconnected")
            raise
        except Exception:
            log.exception("request %s: unexpected error", request_id)
            internal = InternalError(f"internal error; request id {request_id}")
            finish(500, internal.code)
            return _error_response(internal, frontend, request_id, started, ctx)
        headers = {
            **ctx.response_headers,
            **_plan_headers(ctx),
            "x-sluice-request-id": request_id,
            "x-request-id": request_id,
            frontend.request_id_header: request_id,
            "x-sluice-latency-ms": _elapsed_ms(started),
        }
        if isinstance(result, ChatResponse):
            payload = orjson.dumps(frontend.encode_response(result, answer_model(ctx)))
            finish(200)
            return web.Response(body=payload, content_type=_JSON, headers=headers)
        return await _stream_out(request, result, frontend, ctx, headers, wall_start)

    return handle


class _EventStreamResponse(web.StreamResponse):
    """An SSE answer whose status line and headers leave with its first bytes (one `send`
    less per stream). Nothing is held back: a stream is answered only once its first
    upstream read is in hand, so the first write follows within microseconds. A private
    aiohttp switch (3.10+; `web.Response` uses it): if it goes, headers go at `prepare`."""

    _send_headers_immediately = False


async def _stream_out(
    request: web.Request,
    events: EventStream,
    frontend: Frontend,
    ctx: CallContext,
    headers: dict[str, str],
    wall_start: float,
) -> web.StreamResponse:
    """Write the neutral stream as the caller's SSE; a failure mid-stream ends it with a
    well-formed error event, never a silent truncation."""
    resp = _EventStreamResponse(
        headers={
            **headers,
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
        }
    )
    model = answer_model(ctx)
    chat = ctx.request
    encoder = frontend.stream_encoder(
        chat if model == chat.model else dataclasses.replace(chat, model=model)
    )
    request_id = headers["x-sluice-request-id"]
    pending: list[bytes] = []
    ttft_ms: float | None = None
    status, error_type = 200, None
    delivered = False  # the whole answer and its end marker were written
    finished = False  # the drain cut the stream and ended it already

    async def write(data: bytes) -> None:
        nonlocal ttft_ms
        await resp.write(data)
        if ttft_ms is None:  # time to the first byte of the answer the client received
            ttft_ms = (time.perf_counter() - ctx.started) * 1000

    streaming = request.app[GATEWAY].streaming
    task = asyncio.current_task()
    if task is not None:
        streaming.add(task)  # a drain that times out cancels it (see `drain`)
    try:
        await resp.prepare(request)
        await _relay(events, encoder.encode, pending, write)
        pending.append(encoder.close())
        await write(b"".join(pending))
        pending.clear()
        delivered = True
        await resp.write_eof()
    except ConnectionResetError:
        # The client closed the connection, perhaps right at the end (at `write_eof`): an
        # answer delivered in full is a 200, one cut short a 499. No traceback either way.
        status, error_type = _client_gone(request_id, delivered, status, error_type)
    except SluiceError as err:
        log.warning("request %s: stream failed after start: %s", request_id, err.message)
        status, error_type = err.http_status, err.code
        with contextlib.suppress(ConnectionResetError):  # the client may be gone too
            await write(b"".join(pending) + encoder.error(err))
    except asyncio.CancelledError:
        if request.app[GATEWAY].ready:
            status, error_type = _client_gone(request_id, delivered, status, error_type)
            raise
        # The drain timeout cut the stream: end it with the API's error event, not a drop.
        status, error_type = _DRAIN_CUT.http_status, _DRAIN_CUT.code
        finished = await _end_cut_stream(resp, b"".join(pending) + encoder.error(_DRAIN_CUT))
    except Exception:
        log.exception("request %s: unexpected error mid-stream", request_id)
        internal = InternalError(f"internal error; request id {request_id}")
        status, error_type = 500, internal.code
        with contextlib.suppress(ConnectionResetError):
            await resp.write(b"".join(pending) + encoder.error(internal))
    finally:
        streaming.discard(task)
        await events.aclose()  # settles usage and cost
        request.app[GATEWAY].recorder.finish(
            ctx,
            request_id=request_id,
            started=ctx.started,
            wall_start=wall_start,
            status=status,
            error_type=error_type,
            ttft_ms=ttft_ms,
        )
    if not finished:  # else the drain already ended the stream
        with contextlib.suppress(ConnectionResetError):  # a no-op when already written
            await resp.write_eof()
    return resp


async def _relay(
    events: EventStream,
    encode: Callable[[StreamEvent], bytes],
    pending: list[bytes],
    write: Callable[[bytes], Awaitable[None]],
) -> None:
    """Encode the stream's events into `pending`, writing them out at each FLUSH (the end
    of an upstream read). One await per read: `next_batch` hands over its events at once."""
    while True:
        try:
            batch = await next_batch(events)
        except StopAsyncIteration:
            return
        for event in batch:
            if event is FLUSH:
                if pending:
                    await write(b"".join(pending))
                    pending.clear()
                continue
            chunk = encode(event)
            if chunk:
                pending.append(chunk)


def _client_gone(
    request_id: str, delivered: bool, status: int, error_type: str | None
) -> tuple[int, str | None]:
    """The status of a stream whose client left: unchanged if it had everything, else 499."""
    if delivered:
        return status, error_type
    log.info("request %s: client went away mid-stream; upstream closed", request_id)
    return CLIENT_CLOSED, "client_disconnected"


_DRAIN_CUT = ServiceUnavailableError(
    "the gateway shut down before this answer was complete", code="shutting_down"
)


async def _end_cut_stream(resp: web.StreamResponse, last: bytes) -> bool:
    """Write the stream's last bytes (its error event) within a second; True when done."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1):
            await resp.write(last)
            await resp.write_eof()
            return True
    return False


def answer_model(ctx: CallContext) -> str:
    """The response's `model`. Both APIs define it as the model that produced the answer,
    so after a fallback it names the fallback (its public name), not the one asked for;
    otherwise the name the caller used (aliases and routes stay stable for the caller)."""
    dep = ctx.deployment
    if not ctx.fallback or dep is None:
        return ctx.request.model
    return dep.public_names[0] if dep.public_names else dep.model


async def metrics(request: web.Request) -> web.Response:
    body = request.app[GATEWAY].render_metrics()
    view = request.app.get(_WORKER_METRICS)
    if view is not None:  # `--workers N`: every worker's totals (observe/worker_metrics.py)
        body = view.merged(body)
    return web.Response(body=body, headers={"content-type": METRICS_CONTENT_TYPE})


async def drain(app: web.Application, timeout_s: float) -> None:
    """Before the listener closes: refuse new chat calls (503 `shutting_down`; /readyz 503,
    /healthz 200) while the calls in flight finish, for at most `timeout_s`. Calls still
    running after that are cut; their streams end with the API's error event."""
    gateway = app[GATEWAY]
    gateway.ready = False
    deadline = time.monotonic() + timeout_s
    while gateway.active_calls and time.monotonic() < deadline:  # noqa: ASYNC110 - a poll
        await asyncio.sleep(0.05)
    for task in list(gateway.streaming):  # each writes the error event as it stops
        task.cancel()
    deadline = time.monotonic() + 1.0
    while gateway.streaming and time.monotonic() < deadline:  # noqa: ASYNC110 - a poll
        await asyncio.sleep(0.02)


@web.middleware
async def _errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Routing errors (404/405) and errors raised outside chat handlers, as JSON."""
    frontend = ANTHROPIC_FRONTEND if request.path.startswith("/v1/messages") else OPENAI_FRONTEND
    started = time.perf_counter()
    try:
        return await handler(request)
    except SluiceError as err:
        return _error_response(err, frontend, _request_id(request), started)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        missing = NotFoundError(f"{request.method} {request.path}: {exc.reason}")
        resp = _error_response(missing, frontend, _request_id(request), started)
        resp.set_status(exc.status)
        return resp


@web.middleware
async def _no_nul_in_url(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """`%00` in a path or query decodes to a NUL, which PostgreSQL refuses in text: every
    id lookup (`/v1/files/a%00b`, `/v1/batches?after=a%00b`, jobs...) was a 500 on a shared
    store. No id or cursor Sluice makes holds one, so such a URL is a 400 here."""
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.query.items()):
        raise InvalidRequestError("the URL contains a NUL character (%00)")
    return await handler(request)


_OPERATOR_PATHS = frozenset({"/metrics", ALERTS_ENDPOINT})


@web.middleware
async def _operator_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """`observability.metrics_auth`: metrics and alerts need the admin key, like /ui (without
    SLUICE_ADMIN_KEY, loopback clients only)."""
    if request.path in _OPERATOR_PATHS:
        refusal = check_access(request)
        if refusal is not None:
            return refusal
    return await handler(request)


def create_app(config: SluiceConfig, gateway: Gateway | None = None) -> web.Application:
    middlewares = [_errors_as_json, _no_nul_in_url]
    if config.observability.metrics_auth:
        middlewares.append(_operator_only)
    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=middlewares)
    app[GATEWAY] = gateway or Gateway(config)
    install_access(app)  # SLUICE_ADMIN_KEY, read once: /ui, /admin/cache, operator paths
    app.router.add_post("/v1/chat/completions", chat_endpoint(OPENAI_FRONTEND))
    app.router.add_post("/chat/completions", chat_endpoint(OPENAI_FRONTEND))
    app.router.add_post("/v1/messages", chat_endpoint(ANTHROPIC_FRONTEND))
    # /v1/responses (+ stored answers), /v1/embeddings, /v1/messages/count_tokens
    install_endpoints(app, app[GATEWAY], chat_endpoint)
    files_api.install(app)  # /v1/files (issue 16)
    vector_stores_api.install(app)  # /v1/vector_stores (issue 19)
    info.install(app)  # /v1/models, /v1/models/{model}, /healthz, /v1/sluice/usage
    records = config.observability.records
    feedback_api.install(app, records.store_url if records.enabled else None)  # issue 17
    jobs_api.install(app, app[GATEWAY])  # the durable queue's worker + /v1/sluice/jobs (#16)
    batches_api.install(app)  # /v1/batches, /v1/messages/batches, on that queue (issue 16)
    if config.observability.metrics:
        app.router.add_get("/metrics", metrics)
        _install_worker_metrics(app)
    app.router.add_get("/readyz", info.readyz)

    async def _starting(app: web.Application) -> None:
        await app[GATEWAY].start()

    async def _stopping(app: web.Application) -> None:
        app[GATEWAY].ready = False  # /readyz answers 503 while in-flight calls drain

    async def _close(app: web.Application) -> None:
        await app[GATEWAY].close()

    if config.observability.alerts.enabled:
        install_alerts(app, config.observability.alerts)
    install_ui(app)  # /ui, behind SLUICE_ADMIN_KEY (loopback only when it is unset)
    install_eval_ui(app)  # the quality_drop alert rule, /ui/api/eval (issue 17)
    cache_admin.install(app, app[GATEWAY].caches)  # /admin/cache/*, the same access check
    app.on_startup.append(_starting)
    # /admin/keys behind SLUICE_ADMIN_KEY, after the migrations: here or on server.admin_port.
    cfg = config.server
    if cfg.admin_port is None:
        keys_admin.install(app, app[GATEWAY].governance)
    else:
        keys_admin.serve_apart(
            app, app[GATEWAY].governance, cfg.admin_host, cfg.admin_port, cfg.max_body_bytes
        )
    app.on_shutdown.append(_stopping)
    app.on_cleanup.append(_close)
    return app


_WORKER_METRICS = web.AppKey("worker_metrics", WorkerMetrics)


def _install_worker_metrics(app: web.Application) -> None:
    """Under `sluice serve --workers N`: publish this worker's metrics once a second so a
    scrape answered by any worker covers all of them."""
    view = worker_metrics_from_env()
    if view is None:
        return
    app[_WORKER_METRICS] = view

    async def publish_forever() -> None:
        while True:
            await asyncio.sleep(view.interval_s)
            try:
                view.publish(app[GATEWAY].render_metrics())
            except OSError as exc:  # a full disk must not stop the worker
                log.warning("could not publish this worker's metrics: %s", exc)

    async def run(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(publish_forever())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(run)


async def start(
    config: SluiceConfig, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Start the gateway inside the running loop (tests, benchmarks); returns the real port."""
    return await start_app(create_app(config), host, port)


async def start_app(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve an app built by `create_app` (and perhaps extended) in the running loop."""
    edge = app[GATEWAY].config.server.edge
    runner = EdgeRunner(app, edge, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    address = runner.addresses[0]
    return runner, int(address[1])
