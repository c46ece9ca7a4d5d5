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

import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import BodyPartReader, web

from sluice.sim import anthropic_wire, openai_wire
from sluice.sim.chat import JSON, STATE, error_response, headers_with
from sluice.sim.openai_wire import WireError
from sluice.sim.state import SimState
from sluice.sim.text import plan_answer
from sluice.tokens import count_prompt

Wire = Literal["openai", "anthropic"]
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_ITEMS = 100_000
WINDOW_S = 24 * 3600


@dataclass(slots=True)
class SimFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass(slots=True)
class Item:
    custom_id: str
    body: dict[str, Any]
    url: str = "/v1/chat/completions"


@dataclass(slots=True)
class SimBatch:
    id: str
    wire: Wire
    items: list[Item]
    created: float
    validating_s: float
    duration_s: float
    fail_every: int = 0
    expire: bool = False
    poll_5xx: int = 0
    input_file_id: str = ""
    endpoint: str = "/v1/chat/completions"
    completion_window: str = "24h"
    metadata: dict[str, Any] | None = None
    cancelled_at: float | None = None
    done_at_cancel: int = 0
    # made once the batch ends: (custom_id, kind, payload) with kind
    # succeeded | errored | expired | canceled
    results: list[tuple[str, str, dict[str, Any]]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)  # validation failures

    def start(self) -> float:
        return self.created + self.validating_s

    def end(self) -> float:
        return self.start() + self.duration_s

    def done_by(self, now: float) -> int:
        """Items finished by `now` (evenly across the duration)."""
        if now >= self.end():
            return len(self.items)
        if now < self.start() or self.duration_s <= 0:
            return 0
        return min(len(self.items), int(len(self.items) * (now - self.start()) / self.duration_s))


class BatchStore:
    """The simulator's files and batches (in memory, per app)."""

    def __init__(self) -> None:
        self.files: dict[str, SimFile] = {}
        self.batches: dict[str, SimBatch] = {}


STORE: web.AppKey[BatchStore] = web.AppKey("sluice_sim_batches", BatchStore)


def _new(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def _ok(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(body), status=status, content_type=JSON, headers=headers_with()
    )


def _int_header(request: web.Request, name: str, default: int) -> int:
    raw = request.headers.get(name)
    if raw is None:
        return default
    try:
        return max(0, int(float(raw)))
    except ValueError:
        return default


def _settings(request: web.Request) -> tuple[float, float, int, bool, int]:
    cfg = request.app[STATE].config.batch
    duration_ms = _int_header(request, "x-sim-batch-duration-ms", int(cfg.duration_ms))
    return (
        cfg.validating_ms / 1000.0,
        duration_ms / 1000.0,
        _int_header(request, "x-sim-batch-fail-every", cfg.fail_every),
        request.headers.get("x-sim-batch-expire", "0").strip() in ("1", "true", "yes")
        or cfg.expire,
        _int_header(request, "x-sim-batch-poll-5xx", cfg.poll_5xx),
    )


# --- answering items ---------------------------------------------------------------------


def _answer(state: SimState, wire: Wire, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(status, body) the chat endpoint would have given this item (no faults, no delay)."""
    model_name = body.get("model")
    if not isinstance(model_name, str) or not model_name:
        return 400, _error_body(wire, 400, "model: a model name is required")
    if wire == "anthropic" and body.get("stream") is True:
        return 400, _error_body(wire, 400, "stream: streaming is not supported in batches")
    try:
        prompt = (openai_wire if wire == "openai" else anthropic_wire).parse_request(body)
    except WireError as exc:
        return 400, _error_body(wire, 400, exc.message)
    model = state.model(model_name)
    prompt_tokens = count_prompt(prompt.texts, prompt.n_messages)
    if prompt_tokens > model.context_window:
        return 400, _error_body(wire, 400, "the prompt is longer than the model's context")
    answer = plan_answer(
        prompt, model.output_tokens, state.config.seed, "call_" if wire == "openai" else "toolu_"
    )
    stats = state.stats.model(model_name)
    stats.requests += 1
    stats.input_tokens += prompt_tokens
    stats.output_tokens += answer.output_tokens
    state.stats.requests_total += 1
    if wire == "openai":
        raw = openai_wire.completion_body(
            openai_wire.new_id(), int(time.time()), model_name, answer, prompt_tokens, 0
        )
    else:
        raw = anthropic_wire.message_body(
            anthropic_wire.new_id(), model_name, answer, prompt_tokens, 0, 0
        )
    return 200, orjson.loads(raw)


def _error_body(wire: Wire, status: int, message: str) -> dict[str, Any]:
    raw = (
        openai_wire.error_body(status, message)
        if wire == "openai"
        else anthropic_wire.error_body(status, message)
    )
    out: dict[str, Any] = orjson.loads(raw)
    return out


def _finish(state: SimState, store: BatchStore, batch: SimBatch, now: float) -> None:
    """Make the batch's results once it has ended (completed, expired or cancelled)."""
    if batch.results is not None:
        return
    limit = len(batch.items)
    if batch.cancelled_at is not None:
        limit = batch.done_at_cancel
    results: list[tuple[str, str, dict[str, Any]]] = []
    for index, item in enumerate(batch.items, start=1):
        if batch.expire:
            results.append((item.custom_id, "expired", {}))
            continue
        if index > limit:
            results.append((item.custom_id, "canceled", {}))
            continue
        failing = item.custom_id.startswith("sim-fail") or (
            batch.fail_every > 0 and index % batch.fail_every == 0
        )
        if failing:
            results.append(
                (item.custom_id, "errored", {"status": 500, "body": _error_body(
                    batch.wire, 500, "The server had an error processing your request (simulated)."
                )})
            )  # fmt: skip
            continue
        status, body = _answer(state, batch.wire, item.body)
        kind = "succeeded" if status == 200 else "errored"
        results.append((item.custom_id, kind, {"status": status, "body": body}))
    batch.results = results
    if batch.wire == "openai":
        _openai_files(store, batch, now)


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
    file = SimFile(_new("file-"), filename, purpose, data, int(time.time()))
    store.files[file.id] = file
    return _ok(file.to_json())


async def list_files(request: web.Request) -> web.Response:
    files = [f.to_json() for f in request.app[STORE].files.values()]
    return _ok({"object": "list", "data": files, "has_more": False})


async def get_file(request: web.Request) -> web.Response:
    file = request.app[STORE].files.get(request.match_info["file_id"])
    if file is None:
        return error_response("openai", 404, "No such File object.")
    return _ok(file.to_json())


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
    return _ok({"id": file_id, "object": "file", "deleted": True})


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
    validating_s, duration_s, fail_every, expire, poll_5xx = _settings(request)
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
    batch = SimBatch(
        _new("batch_"), "openai", items, time.time(), validating_s, duration_s,
        fail_every, expire, poll_5xx, input_file_id=file.id, endpoint=endpoint,
        metadata=metadata,
    )  # fmt: skip
    if errors or not items:
        batch.errors = errors or [{"code": "empty_file", "message": "The file has no requests."}]
    store.batches[batch.id] = batch
    return _ok(_openai_batch(request.app[STATE], store, batch, time.time(), created=True))


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
        _finish(state, store, batch, now)
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


def _openai_files(store: BatchStore, batch: SimBatch, now: float) -> None:
    out_lines: list[bytes] = []
    err_lines: list[bytes] = []
    for custom_id, kind, payload in batch.results or []:
        rid = _new("batch_req_")
        if kind == "succeeded":
            line = {"id": rid, "custom_id": custom_id, "error": None, "response": {
                "status_code": payload["status"], "request_id": _new("req_"),
                "body": payload["body"]}}  # fmt: skip
            out_lines.append(orjson.dumps(line))
        elif kind == "errored":
            line = {"id": rid, "custom_id": custom_id, "error": None, "response": {
                "status_code": payload["status"], "request_id": _new("req_"),
                "body": payload["body"]}}  # fmt: skip
            err_lines.append(orjson.dumps(line))
        elif kind == "expired":
            err_lines.append(orjson.dumps({"id": rid, "custom_id": custom_id, "response": None,
                "error": {"code": "batch_expired", "message": "This request could not be "
                          "executed before the completion window expired."}}))  # fmt: skip
        # cancelled items appear in neither file (as with OpenAI)
    if out_lines:
        f = SimFile(_new("file-"), f"{batch.id}_output.jsonl", "batch_output",
                    b"\n".join(out_lines) + b"\n", int(now))  # fmt: skip
        store.files[f.id] = f
        batch.output_file_id = f.id
    if err_lines:
        f = SimFile(_new("file-"), f"{batch.id}_error.jsonl", "batch_output",
                    b"\n".join(err_lines) + b"\n", int(now))  # fmt: skip
        store.files[f.id] = f
        batch.error_file_id = f.id


def _poll_fault(batch: SimBatch, wire: Wire) -> web.Response | None:
    if batch.poll_5xx > 0:
        batch.poll_5xx -= 1
        return error_response(wire, 500, "Internal server error (simulated poll fault).")
    return None


async def get_batch(request: web.Request) -> web.Response:
    store = request.app[STORE]
    batch = store.batches.get(request.match_info["batch_id"])
    if batch is None or batch.wire != "openai":
        return error_response("openai", 404, "No such Batch object.")
    fault = _poll_fault(batch, "openai")
    if fault is not None:
        return fault
    return _ok(_openai_batch(request.app[STATE], store, batch, time.time()))


async def list_batches(request: web.Request) -> web.Response:
    store = request.app[STORE]
    state = request.app[STATE]
    now = time.time()
    data = [
        _openai_batch(state, store, b, now)
        for b in reversed(list(store.batches.values()))
        if b.wire == "openai"
    ]
    return _ok({
        "object": "list", "data": data, "has_more": False,
        "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
    })  # fmt: skip


def _cancel(batch: SimBatch, now: float) -> None:
    if batch.cancelled_at is None and batch.results is None and now < batch.end():
        batch.cancelled_at = now
        batch.done_at_cancel = batch.done_by(now)


async def cancel_batch(request: web.Request) -> web.Response:
    store = request.app[STORE]
    batch = store.batches.get(request.match_info["batch_id"])
    if batch is None or batch.wire != "openai":
        return error_response("openai", 404, "No such Batch object.")
    now = time.time()
    if batch.errors or batch.results is not None or now >= batch.end():
        status = _openai_batch(request.app[STATE], store, batch, now)["status"]
        return error_response("openai", 409, f"Cannot cancel a batch with status {status}.")
    _cancel(batch, now)
    body = _openai_batch(request.app[STATE], store, batch, now)
    body["status"] = "cancelling"  # as OpenAI answers the cancel call itself
    body["cancelled_at"] = None
    return _ok(body)


# --- Anthropic Message Batches -----------------------------------------------------------


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
    _validating, duration_s, fail_every, expire, poll_5xx = _settings(request)
    batch = SimBatch(
        _new("msgbatch_"), "anthropic", items, time.time(), 0.0, duration_s,
        fail_every, expire, poll_5xx,
    )  # fmt: skip
    store.batches[batch.id] = batch
    return _ok(_anthropic_batch(request, batch, time.time(), created=True))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}Z"


def _anthropic_batch(
    request: web.Request, batch: SimBatch, now: float, *, created: bool = False
) -> dict[str, Any]:
    ended = not created and (now >= batch.end() or batch.cancelled_at is not None)
    if ended:
        _finish(request.app[STATE], request.app[STORE], batch, now)
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
    fault = _poll_fault(batch, "anthropic")
    if fault is not None:
        return fault
    return _ok(_anthropic_batch(request, batch, time.time()))


async def list_message_batches(request: web.Request) -> web.Response:
    now = time.time()
    data = [
        _anthropic_batch(request, b, now)
        for b in reversed(list(request.app[STORE].batches.values()))
        if b.wire == "anthropic"
    ]
    return _ok({
        "data": data, "has_more": False,
        "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
    })  # fmt: skip


async def cancel_message_batch(request: web.Request) -> web.Response:
    batch = _anthropic_found(request)
    if batch is None:
        return error_response("anthropic", 404, "Message batch not found.")
    _cancel(batch, time.time())
    return _ok(_anthropic_batch(request, batch, time.time(), created=True))


async def message_batch_results(request: web.Request) -> web.Response:
    batch = _anthropic_found(request)
    if batch is None:
        return error_response("anthropic", 404, "Message batch not found.")
    now = time.time()
    if batch.results is None and now < batch.end() and batch.cancelled_at is None:
        return error_response("anthropic", 400, "Batch results are not yet available.")
    _finish(request.app[STATE], request.app[STORE], batch, now)
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
    r.add_post("/v1/messages/batches", create_message_batch)
    r.add_get("/v1/messages/batches", list_message_batches)
    r.add_get("/v1/messages/batches/{batch_id}", get_message_batch)
    r.add_post("/v1/messages/batches/{batch_id}/cancel", cancel_message_batch)
    r.add_get("/v1/messages/batches/{batch_id}/results", message_batch_results)
