"""The simulated batch APIs' shared state (sluice.sim.batches, sluice.sim.message_batches).

Files and batches in memory per app, the per-batch fault settings from headers, and how an
ended batch's results are made: the simulator's chat answers, and for OpenAI the output and
error files.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

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


def new_id(prefix: str) -> str:
    return prefix + os.urandom(12).hex()


def ok(body: Any, status: int = 200) -> web.Response:
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


def batch_settings(request: web.Request) -> tuple[float, float, int, bool, int]:
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


def finish(state: SimState, store: BatchStore, batch: SimBatch, now: float) -> None:
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


def _openai_files(store: BatchStore, batch: SimBatch, now: float) -> None:
    out_lines: list[bytes] = []
    err_lines: list[bytes] = []
    for custom_id, kind, payload in batch.results or []:
        rid = new_id("batch_req_")
        if kind == "succeeded":
            line = {"id": rid, "custom_id": custom_id, "error": None, "response": {
                "status_code": payload["status"], "request_id": new_id("req_"),
                "body": payload["body"]}}  # fmt: skip
            out_lines.append(orjson.dumps(line))
        elif kind == "errored":
            line = {"id": rid, "custom_id": custom_id, "error": None, "response": {
                "status_code": payload["status"], "request_id": new_id("req_"),
                "body": payload["body"]}}  # fmt: skip
            err_lines.append(orjson.dumps(line))
        elif kind == "expired":
            err_lines.append(orjson.dumps({"id": rid, "custom_id": custom_id, "response": None,
                "error": {"code": "batch_expired", "message": "This request could not be "
                          "executed before the completion window expired."}}))  # fmt: skip
        # cancelled items appear in neither file (as with OpenAI)
    if out_lines:
        f = SimFile(new_id("file-"), f"{batch.id}_output.jsonl", "batch_output",
                    b"\n".join(out_lines) + b"\n", int(now))  # fmt: skip
        store.files[f.id] = f
        batch.output_file_id = f.id
    if err_lines:
        f = SimFile(new_id("file-"), f"{batch.id}_error.jsonl", "batch_output",
                    b"\n".join(err_lines) + b"\n", int(now))  # fmt: skip
        store.files[f.id] = f
        batch.error_file_id = f.id


def poll_fault(batch: SimBatch, wire: Wire) -> web.Response | None:
    if batch.poll_5xx > 0:
        batch.poll_5xx -= 1
        return error_response(wire, 500, "Internal server error (simulated poll fault).")
    return None


def cancel(batch: SimBatch, now: float) -> None:
    if batch.cancelled_at is None and batch.results is None and now < batch.end():
        batch.cancelled_at = now
        batch.done_at_cancel = batch.done_by(now)
