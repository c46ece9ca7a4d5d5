"""`/v1/sluice/jobs`: async jobs over HTTP, and the app's one durable-queue worker.

    POST /v1/sluice/jobs                  {request, format | endpoint, webhook_url?, metadata?}
                                          → 202 {id, object: "sluice.job", status: "queued", ...}
    GET  /v1/sluice/jobs                  the caller's jobs, newest first (?limit, ?after, ?status)
    GET  /v1/sluice/jobs/{id}             status; when ended, `http_status` and `result`: the
                                          exact body the sync endpoint would have answered
    POST /v1/sluice/jobs/{id}/cancel      a queued job is cancelled; a running one finishes
    GET  /v1/sluice/jobs/{id}/deliveries  the webhook delivery log

Every route authenticates like the chat endpoints (`Gateway.authenticate`); jobs belong to
the caller's tenant and another tenant's id answers the same 404 as an unknown one. The
request body is decoded at submission, so a bad one is a 400 now, not a failed job later.

Execution (`execute_chat`): the stored body runs through the gateway's whole pipeline —
auth (the job's key is looked up again: a key revoked meanwhile fails the job with 401),
limits and budgets, caches, routing, retries, settlement — exactly as the sync endpoint
runs it, never streamed, at the queue's JOB priority (after interactive work). Its call
record carries `parent_request_id = <job id>` and the request id `<job id>.<attempt>`.

The queue (`sluice.queue`, from `queue:` in the config) and its worker belong to the app:
`app[QUEUE]` is the one queue, `app[QUEUE_HANDLERS]` the handlers by kind (other
features — batches — add theirs before startup), and one worker task runs them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sluice.edge.body import read_json
from sluice.errors import (
    AuthenticationError,
    InternalError,
    InvalidRequestError,
    NotFoundError,
    SluiceError,
)
from sluice.frontends.anthropic import ANTHROPIC_FRONTEND
from sluice.frontends.base import Frontend
from sluice.frontends.openai import OPENAI_FRONTEND
from sluice.identity import Credentials, Identity
from sluice.jobs.service import JobService
from sluice.jobs.ssrf import WebhookRefused
from sluice.jobs.store import JobRow, JobStore, charge_key
from sluice.pipeline.context import CallContext
from sluice.queue import Handler, Queue, build_queue
from sluice.state import charges
from sluice.types import CallMeta, ChatResponse

if TYPE_CHECKING:
    from sluice.gateway import Gateway

log = logging.getLogger("sluice.jobs")

QUEUE: web.AppKey[Queue] = web.AppKey("sluice_queue")
QUEUE_HANDLERS: web.AppKey[dict[str, Handler]] = web.AppKey("sluice_queue_handlers")
JOBS: web.AppKey[JobService] = web.AppKey("sluice_jobs", JobService)

ENDPOINTS = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}
FRONTENDS: dict[str, Frontend] = {"openai": OPENAI_FRONTEND, "anthropic": ANTHROPIC_FRONTEND}
MAX_META_CHARS = 512
STATS_EVERY_S = 5.0


# --- running one chat body through the gateway -------------------------------------------


def _answer_model(ctx: CallContext) -> str:
    """The response's `model`, as the sync endpoint names it (server.answer_model)."""
    dep = ctx.deployment
    if not ctx.fallback or dep is None:
        return ctx.request.model
    return dep.public_names[0] if dep.public_names else dep.model


async def identity_of(gateway: Gateway, key_id: str | None) -> Identity:
    """The identity of a stored job's key now (revoked or expired: 401)."""
    auth = gateway.governance.auth
    if not auth.enabled:
        return Identity.anonymous()
    if key_id is None or auth.store is None:
        raise AuthenticationError("the job's API key is no longer valid", code="invalid_api_key")
    record = await asyncio.to_thread(auth.store.get, key_id)
    if record is None:
        raise AuthenticationError("the job's API key no longer exists", code="invalid_api_key")
    problem = record.problem()
    if problem is not None:
        raise AuthenticationError(problem, code="key_revoked")
    return record.identity()


async def execute_chat(
    gateway: Gateway,
    wire: str,
    body: dict[str, Any],
    identity: Identity,
    *,
    request_id: str,
    parent_id: str | None = None,
    headers: dict[str, str] | None = None,
    hold_charge: list[Any] | None = None,
) -> tuple[int, Any]:
    """(HTTP status, body) the sync endpoint would answer for `body`, through the whole
    pipeline, with a call record (`parent_request_id` = `parent_id`). Never streams.
    `hold_charge`: the call's spend-ledger row goes there instead of the ledger (a job
    keeps it with its result: `sluice.state.charges`)."""
    frontend = FRONTENDS[wire]
    started, wall_start = time.perf_counter(), time.time()
    ctx: CallContext | None = None
    meta_headers = {k.lower(): v for k, v in (headers or {}).items()}
    if parent_id is not None:
        meta_headers["x-sluice-parent-request-id"] = parent_id

    def finish(status: int, error_type: str | None = None) -> None:
        gateway.recorder.finish(
            ctx,
            request_id=request_id,
            started=started,
            wall_start=wall_start,
            status=status,
            error_type=error_type,
        )

    gateway.active_calls += 1
    try:
        meta = CallMeta(request_id=request_id, wire=frontend.wire, headers=meta_headers)
        request = frontend.decode_request({**body, "stream": False}, meta)
        ctx = CallContext(
            request,
            started,
            credentials=Credentials(resolved=identity),
            hold_charge=hold_charge,
        )
        result = await gateway.handler(ctx)
        if not isinstance(result, ChatResponse):  # pragma: no cover - stream is off
            await result.aclose()
            raise InternalError("the pipeline answered a stream to a non-streaming job")
        # encoded inside: should it fail, the call still has its record and its charge
        payload = frontend.encode_response(result, _answer_model(ctx))
    except SluiceError as err:
        finish(err.http_status, err.code)
        return err.http_status, frontend.error_body(err)
    except Exception:
        log.exception("job call %s: unexpected error", request_id)
        internal = InternalError(f"internal error; request id {request_id}")
        finish(500, internal.code)
        return 500, frontend.error_body(internal)
    finally:
        gateway.active_calls -= 1
    finish(200)
    return 200, payload


# --- HTTP ---------------------------------------------------------------------------------


def _format(body: dict[str, Any]) -> str:
    fmt = body.get("format")
    endpoint = body.get("endpoint")
    if fmt is None and endpoint is None:
        return "openai"
    if endpoint is not None:
        if endpoint not in ENDPOINTS:
            raise InvalidRequestError(
                "endpoint must be /v1/chat/completions or /v1/messages", param="endpoint"
            )
        if fmt is not None and fmt != ENDPOINTS[endpoint]:
            raise InvalidRequestError("format and endpoint disagree", param="format")
        return ENDPOINTS[endpoint]
    if fmt not in FRONTENDS:
        raise InvalidRequestError('format must be "openai" or "anthropic"', param="format")
    return str(fmt)


def _metadata(value: Any, max_keys: int) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) > max_keys:
        raise InvalidRequestError(
            f"metadata must be an object of at most {max_keys} string values", param="metadata"
        )
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(v, str) or len(k) > 64 or len(v) > MAX_META_CHARS:
            raise InvalidRequestError(
                f"metadata values must be strings (keys ≤ 64, values ≤ {MAX_META_CHARS} chars)",
                param="metadata",
            )
        out[k] = v
    return out


class JobsAPI:
    def __init__(self, gateway: Gateway, service: JobService) -> None:
        self.gateway = gateway
        self.service = service

    async def _found(self, request: web.Request) -> JobRow:
        identity = await self.gateway.authenticate(request.headers)
        job_id = request.match_info["job_id"]
        job = await self.service.store.get(job_id, identity.tenant)
        if job is None:
            raise NotFoundError(f"No job found with id '{job_id[:64]}'.", code="not_found")
        return job

    async def create(self, request: web.Request) -> web.Response:
        identity = await self.gateway.authenticate(request.headers)
        cfg = self.gateway.config.server
        body = await read_json(request, cfg.max_body_bytes, cfg.edge)
        if not isinstance(body, dict):
            raise InvalidRequestError("the body must be a JSON object")
        chat = body.get("request")
        if not isinstance(chat, dict):
            raise InvalidRequestError("request: the chat request body is required", param="request")
        fmt = _format(body)
        if chat.get("stream") is True:
            raise InvalidRequestError("request.stream: a job cannot stream", param="stream")
        FRONTENDS[fmt].decode_request(chat, CallMeta(wire=FRONTENDS[fmt].wire))  # 400 now
        metadata = _metadata(body.get("metadata"), self.service.config.max_metadata_keys)
        webhook = body.get("webhook_url")
        if webhook is not None and not isinstance(webhook, str):
            raise InvalidRequestError("webhook_url must be a string", param="webhook_url")
        try:
            job = await self.service.submit(
                tenant=identity.tenant,
                key_id=identity.key_id,
                fmt=fmt,
                request=chat,
                metadata=metadata,
                webhook_url=webhook,
            )
        except WebhookRefused as exc:
            raise InvalidRequestError(
                str(exc), param="webhook_url", code="webhook_url_refused"
            ) from None
        return web.Response(
            status=202, body=orjson.dumps(job.public()), content_type="application/json"
        )

    async def retrieve(self, request: web.Request) -> web.Response:
        job = await self._found(request)
        return web.Response(body=orjson.dumps(job.public()), content_type="application/json")

    async def list(self, request: web.Request) -> web.Response:
        identity = await self.gateway.authenticate(request.headers)
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            raise InvalidRequestError("limit must be an integer", param="limit") from None
        jobs = await self.service.store.list_jobs(
            identity.tenant,
            limit=limit,
            status=request.query.get("status"),
            after=request.query.get("after"),
        )
        data = [j.public() for j in jobs]
        body = {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(data) == max(1, min(limit, 100)),
        }
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def cancel(self, request: web.Request) -> web.Response:
        job = await self._found(request)
        after = await self.service.cancel(job.id, job.tenant)
        assert after is not None
        return web.Response(body=orjson.dumps(after.public()), content_type="application/json")

    async def deliveries(self, request: web.Request) -> web.Response:
        job = await self._found(request)
        data = await self.service.store.deliveries(job.id)
        body = {"object": "list", "job_id": job.id, "data": data}
        return web.Response(body=orjson.dumps(body), content_type="application/json")


# --- metrics --------------------------------------------------------------------------------


class QueueMetrics(Collector):
    """Queue depth per priority, oldest age, jobs by outcome: read from a snapshot the
    worker refreshes every few seconds (a scrape never waits on the database)."""

    def __init__(self) -> None:
        self.depth: dict[str, int] = {}
        self.oldest_s = 0.0
        self.jobs: dict[str, int] = {}
        self.items_done = 0
        self.items_failed = 0

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "sluice_work_queue_depth", "Items waiting or running, by priority.", labels=["priority"]
        )
        for name, n in sorted(self.depth.items()):
            depth.add_metric([name], n)
        yield depth
        yield GaugeMetricFamily(
            "sluice_work_queue_oldest_age_seconds",
            "Age of the oldest waiting or running item.",
            value=self.oldest_s,
        )
        items = CounterMetricFamily(
            "sluice_work_queue_items", "Items this process ran, by outcome.", labels=["outcome"]
        )
        items.add_metric(["completed"], self.items_done)
        items.add_metric(["failed"], self.items_failed)
        yield items
        jobs = GaugeMetricFamily(
            "sluice_jobs", "Async jobs in the store, by status.", labels=["status"]
        )
        for status in ("queued", "running", "succeeded", "failed", "cancelled"):
            jobs.add_metric([status], self.jobs.get(status, 0))
        yield jobs


async def _refresh(metrics: QueueMetrics, queue: Queue, store: JobStore | None) -> None:
    while True:
        try:
            metrics.depth = await queue.depth_by_priority()
            metrics.oldest_s = await queue.oldest_age_s()
            metrics.items_done = queue.stats.completed
            metrics.items_failed = queue.stats.failed
            if store is not None:
                metrics.jobs = await store.counts()
                await store.settle_charges()  # kept by a worker that died before these
        except Exception as exc:  # a database hiccup must not end the loop
            log.warning("queue metrics refresh failed: %s", type(exc).__name__)
        await asyncio.sleep(STATS_EVERY_S)


# --- wiring -----------------------------------------------------------------------------------


def install(app: web.Application, gateway: Gateway) -> JobService | None:
    """The app's queue and worker, and the jobs routes when `jobs.enabled`."""
    config = gateway.config
    queue = build_queue(config.queue)
    app[QUEUE] = queue
    app[QUEUE_HANDLERS] = {}
    service: JobService | None = None
    store: JobStore | None = None
    if config.jobs.enabled:
        ledger = gateway.limits.ledger if gateway.limits is not None else None
        store = JobStore(
            config.jobs.store_url,
            ledger_url=config.limits.ledger.store_url if ledger is not None else None,
            migrate_ledger=config.limits.ledger.migrate,
        )

        async def execute(job: JobRow) -> tuple[int, Any, str | None]:
            started = time.perf_counter()
            try:
                identity = await identity_of(gateway, job.key_id)
            except SluiceError as err:  # recorded too: every job run leaves a call record
                gateway.recorder.finish(
                    None,
                    request_id=f"{job.id}.{job.attempts}",
                    started=started,
                    status=err.http_status,
                    error_type=err.code,
                )
                return err.http_status, FRONTENDS[job.format].error_body(err), None
            held: list[Any] = []
            status, body = await execute_chat(
                gateway,
                job.format,
                job.request,
                identity,
                request_id=f"{job.id}.{job.attempts}",
                parent_id=job.id,
                hold_charge=held,
            )
            return status, body, charges.held(held, charge_key(job.id))

        service = JobService(config.jobs, store, queue, execute)
        app[JOBS] = service
        app[QUEUE_HANDLERS].update(service.handlers)
        api = JobsAPI(gateway, service)
        app.router.add_post("/v1/sluice/jobs", api.create)
        app.router.add_get("/v1/sluice/jobs", api.list)
        app.router.add_get("/v1/sluice/jobs/{job_id}", api.retrieve)
        app.router.add_post("/v1/sluice/jobs/{job_id}/cancel", api.cancel)
        app.router.add_get("/v1/sluice/jobs/{job_id}/deliveries", api.deliveries)
    metrics = QueueMetrics()
    gateway.recorder.metrics.registry.register(metrics)
    tasks: list[asyncio.Task[None]] = []
    workers: list[asyncio.Task[None]] = []

    async def _start(app: web.Application) -> None:
        await queue.start()
        if store is not None:
            await store.start()
        tasks.append(asyncio.create_task(_refresh(metrics, queue, store)))

    async def _work() -> None:
        """The worker runs items through the gateway, so it starts as one of the gateway's
        parts, after the ones it uses (before, an item taken at startup ran through a
        gateway not started yet: its call record went to a sink that was then replaced)."""
        registered: dict[str, Handler] = app[QUEUE_HANDLERS]
        handlers = dict(registered)
        if handlers:
            worker = _worker(queue, handlers, config.queue.concurrency)
            workers.append(asyncio.create_task(worker))

    gateway.supervisor.add("queue_worker", _work)

    async def _stop(_app: web.Application) -> None:
        queue.stop()  # running items finish; waiting ones stay for the next start
        for task in workers:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout=10)
        for task in [*workers, *tasks]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if service is not None:
            await service.close()
        if store is not None:
            await store.close()
        await queue.close()

    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    return service


async def _worker(queue: Queue, handlers: dict[str, Handler], concurrency: int) -> None:
    while True:
        try:
            await queue.run(handlers, concurrency)
            return  # stopped
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database went away: try again shortly
            log.warning("queue worker stopped (%s); restarting in 1 s", type(exc).__name__)
            await asyncio.sleep(1.0)
