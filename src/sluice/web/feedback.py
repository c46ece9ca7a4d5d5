"""`POST /v1/sluice/feedback`: a caller's feedback on one of its own calls.

The caller authenticates like any data-plane call (its virtual key; anonymous when auth is
off). The call must exist in the records store *and belong to the caller's tenant*: any other
request id — unknown, or another tenant's — is the same 404 in the OpenAI error shape, so a
tenant learns nothing about another's calls. Records are written in batches off the request
path (every 0.5 s), so feedback sent right after a call waits briefly for its record.

A flood of made-up ids cannot hold the shared thread pool: at most `MAX_WAITERS` requests wait
at once; past that an id is looked up once.

Feedback is stored in the records store's database (`sluice.eval.feedback_store`); with no
records store configured the endpoint answers 404 saying so.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from sluice.errors import InvalidRequestError, NotFoundError, RequestTooLargeError
from sluice.eval.calls import find_call
from sluice.eval.feedback import Feedback, FeedbackIn
from sluice.eval.feedback_store import FeedbackStore
from sluice.observe.records import CallRecord
from sluice.observe.store import RecordStore
from sluice.web.appkeys import GATEWAY

PATH = "/v1/sluice/feedback"
MAX_BODY_BYTES = 16 * 1024  # a bounded comment and tags fit many times over
RECORD_WAIT_S = 2.0  # how long to wait for a just-made call's record to be written
_POLL_S = 0.1
# Requests waiting for a record at once. An unknown id costs RECORD_WAIT_S of polling (a
# database query per _POLL_S in a thread); a flood of made-up ids would hold the default
# thread pool that the rest of the gateway shares. Past this many, an id is looked up once.
MAX_WAITERS = 16

STORE: web.AppKey[FeedbackStore] = web.AppKey("feedback_store", FeedbackStore)


class Waiters:
    """How many feedback requests are polling for their call's record (`MAX_WAITERS`)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.count = limit, 0


WAITERS: web.AppKey[Waiters] = web.AppKey("feedback_waiters", Waiters)
OTHER = "_other"


class FeedbackMetrics:
    """`sluice_feedback_total{route,model,kind}` (kind: up, down, score) and
    `sluice_feedback_score_sum{route,model}` on the gateway's registry: divided by the calls
    of the same route (`sluice_requests_total`), the feedback rate and mean score per route
    and model. `route` is the name the caller asked for, `model` what served it (a route's
    pick); each kept only when this gateway serves it (else `_other`), so callers cannot
    grow the series."""

    def __init__(self, registry: CollectorRegistry, known: frozenset[str]) -> None:
        self._known = known
        self.count = Counter(
            "sluice_feedback",
            "User feedback received.",
            ["route", "model", "kind"],
            registry=registry,
        )
        self.score = Counter(
            "sluice_feedback_score_sum",
            "Sum of feedback scores (0-1; thumbs up 1, down 0).",
            ["route", "model"],
            registry=registry,
        )

    def observe(self, route: str | None, model: str, feedback: Feedback) -> None:
        known = self._known
        model_label = model if model in known else OTHER
        route_label = (route if route in known else OTHER) if route else model_label
        self.count.labels(route_label, model_label, feedback.thumbs or "score").inc()
        self.score.labels(route_label, model_label).inc(feedback.score)


METRICS: web.AppKey[FeedbackMetrics] = web.AppKey("feedback_metrics", FeedbackMetrics)


def install(app: web.Application, store_url: str | None) -> None:
    """Add the route; the store opens (and creates its table) at startup."""
    gateway = app[GATEWAY]
    known = frozenset((*gateway.runtime.by_model, *gateway.config.routes))
    app[METRICS] = FeedbackMetrics(gateway.recorder.metrics.registry, known)
    app[WAITERS] = Waiters(MAX_WAITERS)
    app.router.add_post(PATH, submit)
    if store_url is None:
        return

    async def _open(app: web.Application) -> None:
        app[STORE] = await asyncio.to_thread(FeedbackStore.open, store_url)

    async def _close(app: web.Application) -> None:
        store = app.get(STORE)
        if store is not None:
            store.close()

    app.on_startup.append(_open)
    app.on_cleanup.append(_close)


async def submit(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    identity = await gateway.authenticate(request.headers)
    body = _parse(await _read(request))
    records = gateway.recorder.store
    store = request.app.get(STORE)
    if records is None or store is None:
        raise NotFoundError("feedback needs the records store (observability.records.store_url)")
    record = await _own_call(records, body.request_id, identity.tenant, request.app[WAITERS])
    feedback = Feedback(
        request_id=body.request_id,
        tenant=identity.tenant,
        key_id=identity.key_id,
        score=body.effective_score,
        thumbs=body.thumbs,
        comment=body.comment,
        tags=body.tags,
        ts=time.time(),
    )
    await asyncio.to_thread(store.put, feedback)
    request.app[METRICS].observe(record.route, record.model_requested, feedback)
    answer = {
        "object": "sluice.feedback",
        "request_id": feedback.request_id,
        "score": feedback.score,
        "thumbs": feedback.thumbs,
        "tags": list(feedback.tags),
        "route": record.route,
        "model": record.model_requested,
    }
    return web.Response(body=orjson.dumps(answer), status=201, content_type="application/json")


async def _read(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise RequestTooLargeError(f"feedback body is over {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(MAX_BODY_BYTES + 1 - size):  # may be partial
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestTooLargeError(f"feedback body is over {MAX_BODY_BYTES} bytes")
    return b"".join(chunks)


def _parse(raw: bytes) -> FeedbackIn:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequestError("feedback body is not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequestError("feedback body must be a JSON object")
    try:
        return FeedbackIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidRequestError(f"{where}: {first['msg']}", param=where) from None


async def _own_call(
    records: RecordStore, request_id: str, tenant: str, waiters: Waiters
) -> CallRecord:
    """The caller's call record, waiting up to `RECORD_WAIT_S` for it to be written (when
    fewer than `waiters.limit` requests wait already; else one look-up)."""
    record = await asyncio.to_thread(find_call, records, request_id, tenant)
    if record is not None:
        return record
    missing = NotFoundError(f"no call with request id {request_id!r} for this key")
    if waiters.count >= waiters.limit:
        raise missing
    waiters.count += 1
    try:
        deadline = time.monotonic() + RECORD_WAIT_S
        while time.monotonic() < deadline:  # unknown and another tenant's: the same wait
            await asyncio.sleep(_POLL_S)
            record = await asyncio.to_thread(find_call, records, request_id, tenant)
            if record is not None:
                return record
        raise missing
    finally:
        waiters.count -= 1
