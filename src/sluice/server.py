"""The thin HTTP surface: an aiohttp app built in a factory, no module-level state.

Handlers decode the caller's wire format, run the pipeline, and encode the answer (JSON or
SSE) in the same wire format. Every answer carries `x-sluice-request-id`,
`x-sluice-deployment` and `x-sluice-latency-ms`; every error is in the caller's format.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from sluice.config import SluiceConfig
from sluice.errors import (
    InternalError,
    InvalidRequestError,
    ModelNotFoundError,
    NotFoundError,
    RequestTooLargeError,
    ServiceUnavailableError,
    SluiceError,
)
from sluice.frontends.anthropic import ANTHROPIC_FRONTEND
from sluice.frontends.base import Frontend
from sluice.frontends.openai import OPENAI_FRONTEND
from sluice.gateway import Gateway
from sluice.governance.counters import CounterBackendError
from sluice.identity import Credentials
from sluice.observe.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from sluice.pipeline.context import (
    CallContext,
)
from sluice.providers.forwarding import HeaderFilter
from sluice.types import FLUSH, CallMeta, ChatResponse, EventStream
from sluice.web import cache_admin, keys_admin
from sluice.web import feedback as feedback_api
from sluice.web.access import check_access, install_access
from sluice.web.alerts import ENDPOINT as ALERTS_ENDPOINT
from sluice.web.alerts import install as install_alerts
from sluice.web.appkeys import GATEWAY
from sluice.web.ui import install as install_ui

log = logging.getLogger("sluice")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_CAPTURED_HEADERS = frozenset({"traceparent", "idempotency-key"})
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
    if ctx.deployment is not None:
        headers["x-sluice-deployment"] = ctx.deployment.id
    if ctx.degraded:
        headers["x-sluice-degraded"] = "true"
    return headers


def _elapsed_ms(started: float) -> str:
    return f"{(time.perf_counter() - started) * 1000:.2f}"


async def _read_json(request: web.Request, limit: int) -> dict[str, Any]:
    length = request.content_length
    if length is not None and length > limit:
        raise RequestTooLargeError(f"request body is {length} bytes; the limit is {limit}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestTooLargeError(f"request body is over the limit of {limit} bytes") from None
    if not raw:
        raise InvalidRequestError("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    return body


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
        tracing = request.app[GATEWAY].tracing
        if not tracing.enabled:
            return await serve(request)
        with tracing.request_span(f"{request.method} {request.path}", request.headers) as span:
            response = await serve(request)
            if span is not None:
                span.set_attribute("http.response.status_code", response.status)
            return response

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
            # Authenticated before the body is read (a caller without a valid key learns
            # nothing about its body); the auth stage takes the result as it is.
            identity = await gateway.authenticate(request.headers)
            body = await _read_json(request, gateway.config.server.max_body_bytes)
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
        chat = ctx.request
        headers = {
            **ctx.response_headers,
            **_plan_headers(ctx),
            "x-sluice-request-id": request_id,
            "x-request-id": request_id,
            "x-sluice-latency-ms": _elapsed_ms(started),
        }
        if isinstance(result, ChatResponse):
            payload = orjson.dumps(frontend.encode_response(result, chat.model))
            finish(200)
            return web.Response(body=payload, content_type=_JSON, headers=headers)
        return await _stream_out(request, result, frontend, ctx, headers, wall_start)

    return handle


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
    resp = web.StreamResponse(
        headers={
            **headers,
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            "x-accel-buffering": "no",
        }
    )
    encoder = frontend.stream_encoder(ctx.request)
    request_id = headers["x-sluice-request-id"]
    pending: list[bytes] = []
    ttft_ms: float | None = None
    status, error_type = 200, None

    async def write(data: bytes) -> None:
        nonlocal ttft_ms
        await resp.write(data)
        if ttft_ms is None:  # time to the first byte of the answer the client received
            ttft_ms = (time.perf_counter() - ctx.started) * 1000

    try:
        await resp.prepare(request)
        async for event in events:
            if event is FLUSH:
                if pending:
                    await write(b"".join(pending))
                    pending.clear()
                continue
            chunk = encoder.encode(event)
            if chunk:
                pending.append(chunk)
        pending.append(encoder.close())
        await write(b"".join(pending))
    except SluiceError as err:
        log.warning("request %s: stream failed after start: %s", request_id, err.message)
        status, error_type = err.http_status, err.code
        await write(b"".join(pending) + encoder.error(err))
    except (ConnectionResetError, asyncio.CancelledError):
        log.info("request %s: client went away mid-stream; upstream closed", request_id)
        status, error_type = CLIENT_CLOSED, "client_disconnected"
        raise
    except Exception:
        log.exception("request %s: unexpected error mid-stream", request_id)
        internal = InternalError(f"internal error; request id {request_id}")
        status, error_type = 500, internal.code
        await resp.write(b"".join(pending) + encoder.error(internal))
    finally:
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
    await resp.write_eof()
    return resp


def _owner(gateway: Gateway, name: str) -> str:
    """Who a listed model belongs to: its first deployment's provider, or `sluice` (a route)."""
    deployments = gateway.runtime.by_model.get(name)
    return deployments[0].provider if deployments else "sluice"


async def list_models(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    identity = await gateway.authenticate(request.headers)
    names = sorted(
        n for n in {*gateway.runtime.by_model, *gateway.config.routes} if identity.allows(n)
    )
    if "anthropic-version" in request.headers:
        data: list[dict[str, Any]] = [
            {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}
            for n in names
        ]
        first, last = (names[0], names[-1]) if names else (None, None)
        body: dict[str, Any] = {"data": data, "has_more": False, "first_id": first, "last_id": last}
    else:
        body = {
            "object": "list",
            "data": [
                {
                    "id": n,
                    "object": "model",
                    "created": 0,
                    "owned_by": _owner(gateway, n),
                }
                for n in names
            ],
        }
    return web.json_response(body, dumps=_dumps)


async def get_model(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    identity = await gateway.authenticate(request.headers)
    name = request.match_info["model"]
    if not identity.allows(name):
        raise ModelNotFoundError(f"model {name!r} does not exist or this key may not use it")
    if name not in gateway.config.routes:
        gateway.runtime.deployments_for(name)  # 404 for an unknown name
    body = {"id": name, "object": "model", "created": 0, "owned_by": _owner(gateway, name)}
    return web.json_response(body, dumps=_dumps)


async def usage(request: web.Request) -> web.Response:
    """The caller's own limits and budgets: used, reserved, remaining, reset times."""
    gateway = request.app[GATEWAY]
    identity = await gateway.authenticate(request.headers)  # a key sees only its own
    if gateway.limits is None:
        raise NotFoundError("usage is not tracked: limits are not enabled (limits.enabled)")
    try:
        body = await gateway.limits.usage(identity)
    except CounterBackendError as exc:
        raise ServiceUnavailableError(
            "usage cannot be read right now (counter store unreachable)",
            headers={"retry-after": "1"},
        ) from exc
    return web.json_response(body, dumps=_dumps)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[GATEWAY].render_metrics()
    return web.Response(body=body, headers={"content-type": METRICS_CONTENT_TYPE})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    body = {
        "status": "ready" if gateway.ready else "stopping",
        "deployments": gateway.executor.breaker_states(),
        "models": sorted(gateway.runtime.by_model),
        # Each supervised part's state, without error details (they can name hosts).
        "parts": {k: v.split(":", 1)[0] for k, v in gateway.supervisor.health().items()},
    }
    return web.json_response(body, status=200 if gateway.ready else 503, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


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
    middlewares = [_errors_as_json]
    if config.observability.metrics_auth:
        middlewares.append(_operator_only)
    app = web.Application(client_max_size=config.server.max_body_bytes, middlewares=middlewares)
    app[GATEWAY] = gateway or Gateway(config)
    install_access(app)  # SLUICE_ADMIN_KEY, read once: /ui, /admin/cache, operator paths
    app.router.add_post("/v1/chat/completions", chat_endpoint(OPENAI_FRONTEND))
    app.router.add_post("/chat/completions", chat_endpoint(OPENAI_FRONTEND))
    app.router.add_post("/v1/messages", chat_endpoint(ANTHROPIC_FRONTEND))
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", get_model)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/sluice/usage", usage)
    records = config.observability.records
    feedback_api.install(app, records.store_url if records.enabled else None)  # issue 17
    if config.observability.metrics:
        app.router.add_get("/metrics", metrics)
    app.router.add_get("/readyz", readyz)

    async def _starting(app: web.Application) -> None:
        await app[GATEWAY].start()

    async def _stopping(app: web.Application) -> None:
        app[GATEWAY].ready = False  # /readyz answers 503 while in-flight calls drain

    async def _close(app: web.Application) -> None:
        await app[GATEWAY].close()

    if config.observability.alerts.enabled:
        install_alerts(app, config.observability.alerts)
    install_ui(app)  # /ui, behind SLUICE_ADMIN_KEY (loopback only when it is unset)
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


async def start(
    config: SluiceConfig, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Start the gateway inside the running loop (tests, benchmarks); returns the real port."""
    return await start_app(create_app(config), host, port)


async def start_app(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, int]:
    """Serve an app built by `create_app` (and perhaps extended) in the running loop."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    address = runner.addresses[0]
    return runner, int(address[1])
