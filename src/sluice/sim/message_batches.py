"""Anthropic Message Batches, simulated (routes registered by sluice.sim.batches.install).

`POST /v1/messages/batches`, `GET /v1/messages/batches`, `GET /v1/messages/batches/{id}`,
`POST /v1/messages/batches/{id}/cancel`, `GET /v1/messages/batches/{id}/results` (JSONL);
timing and faults as described in sluice.sim.batches.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from sluice.sim.batch_store import (
    MAX_ITEMS,
    STORE,
    WINDOW_S,
    Item,
    SimBatch,
    batch_settings,
    cancel,
    finish,
    new_id,
    ok,
    poll_fault,
)
from sluice.sim.chat import STATE, error_response, headers_with


async def create_message_batch(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return error_response("anthropic", 400, "We could not parse the JSON body of your request.")
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        return error_response("anthropic", 400, "requests: a non-empty list is required")
    if len(requests) > MAX_ITEMS:
        return error_response("anthropic", 400, "requests: at most 100000 requests")
    items: list[Item] = []
    seen: set[str] = set()
    for i, row in enumerate(requests):
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("custom_id"), str)
            or not isinstance(row.get("params"), dict)
        ):
            return error_response(
                "anthropic", 400, f"requests.{i}: custom_id and params are required"
            )
        if row["custom_id"] in seen:
            return error_response("anthropic", 400, f"requests.{i}: duplicate custom_id")
        seen.add(row["custom_id"])
        items.append(Item(row["custom_id"], row["params"], "/v1/messages"))
    _validating, duration_s, fail_every, expire, poll_5xx = batch_settings(request)
    batch = SimBatch(
        new_id("msgbatch_"), "anthropic", items, time.time(), 0.0, duration_s,
        fail_every, expire, poll_5xx,
    )  # fmt: skip
    store.batches[batch.id] = batch
    return ok(_anthropic_batch(request, batch, time.time(), created=True))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"


def _anthropic_batch(
    request: web.Request, batch: SimBatch, now: float, *, created: bool = False
) -> dict[str, Any]:
    ended = not created and (now >= batch.end() or batch.cancelled_at is not None)
    if ended:
        finish(request.app[STATE], request.app[STORE], batch, now)
    counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    if batch.results is not None:
        for _, kind, _p in batch.results:
            counts[kind] += 1
        status = "ended"
    else:
        counts["processing"] = len(batch.items)
        status = "canceling" if batch.cancelled_at is not None else "in_progress"
    origin = f"{request.scheme}://{request.host}"
    ended_at = (batch.cancelled_at or batch.end()) if status == "ended" else None
    return {
        "id": batch.id,
        "type": "message_batch",
        "processing_status": status,
        "request_counts": counts,
        "ended_at": _iso(ended_at) if ended_at else None,
        "created_at": _iso(batch.created),
        "expires_at": _iso(batch.created + WINDOW_S),
        "archived_at": None,
        "cancel_initiated_at": _iso(batch.cancelled_at) if batch.cancelled_at else None,
        "results_url": f"{origin}/v1/messages/batches/{batch.id}/results"
        if status == "ended"
        else None,
    }


def _anthropic_found(request: web.Request) -> SimBatch | None:
    batch = request.app[STORE].batches.get(request.match_info["batch_id"])
    return batch if batch is not None and batch.wire == "anthropic" else None


async def get_message_batch(request: web.Request) -> web.Response:
    batch = _anthropic_found(request)
    if batch is None:
        return error_response("anthropic", 404, "Message batch not found.")
    fault = poll_fault(batch, "anthropic")
    if fault is not None:
        return fault
    return ok(_anthropic_batch(request, batch, time.time()))


async def list_message_batches(request: web.Request) -> web.Response:
    now = time.time()
    data = [
        _anthropic_batch(request, b, now)
        for b in reversed(list(request.app[STORE].batches.values()))
        if b.wire == "anthropic"
    ]
    return ok({
        "data": data, "has_more": False,
        "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
    })  # fmt: skip


async def cancel_message_batch(request: web.Request) -> web.Response:
    batch = _anthropic_found(request)
    if batch is None:
        return error_response("anthropic", 404, "Message batch not found.")
    cancel(batch, time.time())
    return ok(_anthropic_batch(request, batch, time.time(), created=True))


async def message_batch_results(request: web.Request) -> web.Response:
    batch = _anthropic_found(request)
    if batch is None:
        return error_response("anthropic", 404, "Message batch not found.")
    now = time.time()
    if batch.results is None and now < batch.end() and batch.cancelled_at is None:
        return error_response("anthropic", 400, "Batch results are not yet available.")
    finish(request.app[STATE], request.app[STORE], batch, now)
    lines: list[bytes] = []
    for custom_id, kind, payload in batch.results or []:
        result: dict[str, Any]
        if kind == "succeeded":
            result = {"type": "succeeded", "message": payload["body"]}
        elif kind == "errored":
            result = {"type": "errored", "error": payload["body"]}
        else:
            result = {"type": kind}
        lines.append(orjson.dumps({"custom_id": custom_id, "result": result}))
    return web.Response(
        body=b"\n".join(lines) + b"\n",
        content_type="application/x-jsonl",
        headers=headers_with(),
    )
