"""The providers' batch APIs, simulated: OpenAI Files + Batches, Anthropic Message Batches.

So Sluice's "forward" mode (upload to the provider's batch API, poll, map results back)
is tested end to end against something with the providers' shapes, delays and faults.

OpenAI: `POST /v1/files` (multipart, purpose `batch`), `GET /v1/files`, `GET
/v1/files/{id}`, `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`; `POST
/v1/batches`, `GET /v1/batches`, `GET /v1/batches/{id}`, `POST /v1/batches/{id}/cancel`.
Anthropic: `POST /v1/messages/batches`, `GET /v1/messages/batches`, `GET
/v1/messages/batches/{id}`, `POST /v1/messages/batches/{id}/cancel`, `GET
/v1/messages/batches/{id}/results` (JSONL).

Progress is a pure function of time since creation (deterministic for a given clock):
`validating_ms` (OpenAI only) then `duration_ms` for the whole batch, items finishing
evenly across it; with the defaults (0, 0) a batch is done at its first poll. Answers are
the simulator's chat answers (same text, usage, cache-free), made when the batch ends.

Faults, per batch, from headers on the create request (or `SimConfig.batch` defaults):
- `x-sim-batch-fail-every: N` — every N-th item fails (OpenAI: a 500 line in the error
  file; Anthropic: `errored`); a custom_id starting `sim-fail` always fails;
- `x-sim-batch-expire: 1` — the batch expires at its end: items are `expired` (OpenAI: an
  error-file line with code `batch_expired`), none succeed;
- `x-sim-batch-poll-5xx: N` — the first N polls (retrieve) of the batch answer 500;
- `x-sim-batch-duration-ms: X` — this batch's duration.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from sluice.sim import message_batches
from sluice.sim.batch_store import (
    MAX_FILE_BYTES,
    MAX_ITEMS,
    STORE,
    WINDOW_S,
    BatchStore,
    Item,
    SimBatch,
    SimFile,
    batch_settings,
    cancel,
    finish,
    new_id,
    ok,
    poll_fault,
)
from sluice.sim.chat import STATE, error_response, headers_with
from sluice.sim.state import SimState

# --- OpenAI Files ------------------------------------------------------------------------


async def create_file(request: web.Request) -> web.Response:
    store = request.app[STORE]
    if not request.content_type.startswith("multipart/"):
        return error_response("openai", 400, "Expected a multipart/form-data upload.")
    purpose = ""
    filename = "upload.jsonl"
    data: bytes | None = None
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "purpose":
            purpose = (await part.text()).strip()
        elif part.name == "file":
            filename = part.filename or filename
            data = bytes(await part.read())
            if len(data) > MAX_FILE_BYTES:
                return error_response("openai", 413, "File too large.")
    if data is None:
        return error_response("openai", 400, "file: a file is required", param="file")
    if purpose not in ("batch", "batch_output", "fine-tune", "assistants", "user_data"):
        return error_response("openai", 400, f"purpose: invalid purpose {purpose!r}")
    file = SimFile(new_id("file-"), filename, purpose, data, int(time.time()))
    store.files[file.id] = file
    return ok(file.to_json())


async def list_files(request: web.Request) -> web.Response:
    files = [f.to_json() for f in request.app[STORE].files.values()]
    return ok({"object": "list", "data": files, "has_more": False})


async def get_file(request: web.Request) -> web.Response:
    file = request.app[STORE].files.get(request.match_info["file_id"])
    if file is None:
        return error_response("openai", 404, "No such File object.")
    return ok(file.to_json())


async def file_content(request: web.Request) -> web.Response:
    file = request.app[STORE].files.get(request.match_info["file_id"])
    if file is None:
        return error_response("openai", 404, "No such File object.")
    return web.Response(
        body=file.data, content_type="application/octet-stream", headers=headers_with()
    )


async def delete_file(request: web.Request) -> web.Response:
    file_id = request.match_info["file_id"]
    if request.app[STORE].files.pop(file_id, None) is None:
        return error_response("openai", 404, "No such File object.")
    return ok({"id": file_id, "object": "file", "deleted": True})


# --- OpenAI Batches ----------------------------------------------------------------------


def _parse_input(data: bytes, endpoint: str) -> tuple[list[Item], list[dict[str, Any]]]:
    items: list[Item] = []
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line_no, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            errors.append(
                {"code": "invalid_json_line", "message": "Invalid JSON.", "line": line_no}
            )
            continue
        if not isinstance(row, dict) or not isinstance(row.get("custom_id"), str):
            errors.append({"code": "missing_required_parameter", "message": "custom_id is "
                           "required.", "param": "custom_id", "line": line_no})  # fmt: skip
            continue
        if row.get("url") != endpoint or not isinstance(row.get("body"), dict):
            errors.append({"code": "invalid_url", "message": f"url must be {endpoint} and body "
                           "an object.", "param": "url", "line": line_no})  # fmt: skip
            continue
        if row["custom_id"] in seen:
            errors.append({"code": "duplicate_custom_id", "message": "custom_id must be unique.",
                           "param": "custom_id", "line": line_no})  # fmt: skip
            continue
        seen.add(row["custom_id"])
        items.append(Item(row["custom_id"], row["body"], endpoint))
        if len(items) > MAX_ITEMS:
            errors.append({"code": "too_many_requests", "message": "Too many requests.",
                           "line": line_no})  # fmt: skip
            break
    return items, errors


async def create_batch(request: web.Request) -> web.Response:
    store = request.app[STORE]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return error_response("openai", 400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict):
        return error_response("openai", 400, "The body must be a JSON object.")
    endpoint = body.get("endpoint")
    if endpoint not in ("/v1/chat/completions",):
        return error_response("openai", 400, "endpoint: only /v1/chat/completions is simulated")
    if body.get("completion_window") != "24h":
        return error_response("openai", 400, "completion_window: must be 24h")
    file = store.files.get(str(body.get("input_file_id")))
    if file is None:
        return error_response("openai", 404, "No such File object.", param="input_file_id")
    items, errors = _parse_input(file.data, endpoint)
    validating_s, duration_s, fail_every, expire, poll_5xx = batch_settings(request)
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
    batch = SimBatch(
        new_id("batch_"), "openai", items, time.time(), validating_s, duration_s,
        fail_every, expire, poll_5xx, input_file_id=file.id, endpoint=endpoint,
        metadata=metadata,
    )  # fmt: skip
    if errors or not items:
        batch.errors = errors or [{"code": "empty_file", "message": "The file has no requests."}]
    store.batches[batch.id] = batch
    return ok(_openai_batch(request.app[STATE], store, batch, time.time(), created=True))


def _openai_status(batch: SimBatch, now: float) -> str:
    if batch.errors:
        return "failed"
    if batch.cancelled_at is not None:
        return "cancelled"
    if now < batch.start():
        return "validating"
    if now < batch.end():
        return "in_progress"
    return "expired" if batch.expire else "completed"


def _openai_batch(
    state: SimState, store: BatchStore, batch: SimBatch, now: float, *, created: bool = False
) -> dict[str, Any]:
    status = "validating" if created else _openai_status(batch, now)
    if status in ("completed", "expired", "cancelled") and not created:
        finish(state, store, batch, now)
    failed = completed = 0
    if batch.results is not None:
        completed = sum(1 for _, kind, _p in batch.results if kind == "succeeded")
        failed = sum(1 for _, kind, _p in batch.results if kind in ("errored", "expired"))
    elif status == "in_progress":
        done = batch.done_by(now)
        failed = done // batch.fail_every if batch.fail_every else 0
        completed = done - failed
    created_at = int(batch.created)
    out: dict[str, Any] = {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": created_at,
        "in_progress_at": int(batch.start()) if status != "validating" and not batch.errors
        else None,
        "expires_at": created_at + WINDOW_S,
        "finalizing_at": int(batch.end()) if status in ("completed", "expired") else None,
        "completed_at": int(batch.end()) if status == "completed" else None,
        "failed_at": created_at if status == "failed" else None,
        "expired_at": int(batch.end()) if status == "expired" else None,
        "cancelling_at": int(batch.cancelled_at) if batch.cancelled_at else None,
        "cancelled_at": int(batch.cancelled_at) if status == "cancelled" and batch.cancelled_at
        else None,
        "request_counts": {"total": len(batch.items), "completed": completed, "failed": failed},
        "metadata": batch.metadata,
    }  # fmt: skip
    return out


async def get_batch(request: web.Request) -> web.Response:
    store = request.app[STORE]
    batch = store.batches.get(request.match_info["batch_id"])
    if batch is None or batch.wire != "openai":
        return error_response("openai", 404, "No such Batch object.")
    fault = poll_fault(batch, "openai")
    if fault is not None:
        return fault
    return ok(_openai_batch(request.app[STATE], store, batch, time.time()))


async def list_batches(request: web.Request) -> web.Response:
    store = request.app[STORE]
    state = request.app[STATE]
    now = time.time()
    data = [
        _openai_batch(state, store, b, now)
        for b in reversed(list(store.batches.values()))
        if b.wire == "openai"
    ]
    return ok({
        "object": "list", "data": data, "has_more": False,
        "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
    })  # fmt: skip


async def cancel_batch(request: web.Request) -> web.Response:
    store = request.app[STORE]
    batch = store.batches.get(request.match_info["batch_id"])
    if batch is None or batch.wire != "openai":
        return error_response("openai", 404, "No such Batch object.")
    now = time.time()
    if batch.errors or batch.results is not None or now >= batch.end():
        status = _openai_batch(request.app[STATE], store, batch, now)["status"]
        return error_response("openai", 409, f"Cannot cancel a batch with status {status}.")
    cancel(batch, now)
    body = _openai_batch(request.app[STATE], store, batch, now)
    body["status"] = "cancelling"  # as OpenAI answers the cancel call itself
    body["cancelled_at"] = None
    return ok(body)


def install(app: web.Application) -> None:
    """Register the batch routes on a simulator app."""
    app[STORE] = BatchStore()
    r = app.router
    r.add_post("/v1/files", create_file)
    r.add_get("/v1/files", list_files)
    r.add_get("/v1/files/{file_id}", get_file)
    r.add_get("/v1/files/{file_id}/content", file_content)
    r.add_delete("/v1/files/{file_id}", delete_file)
    r.add_post("/v1/batches", create_batch)
    r.add_get("/v1/batches", list_batches)
    r.add_get("/v1/batches/{batch_id}", get_batch)
    r.add_post("/v1/batches/{batch_id}/cancel", cancel_batch)
    m = message_batches
    r.add_post("/v1/messages/batches", m.create_message_batch)
    r.add_get("/v1/messages/batches", m.list_message_batches)
    r.add_get("/v1/messages/batches/{batch_id}", m.get_message_batch)
    r.add_post("/v1/messages/batches/{batch_id}/cancel", m.cancel_message_batch)
    r.add_get("/v1/messages/batches/{batch_id}/results", m.message_batch_results)
