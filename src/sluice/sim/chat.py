"""The chat endpoints: one request in, one simulated answer out (or a fault).

Hot path per request: read bytes, `orjson.loads`, walk the messages once, hash, build
the answer, `orjson.dumps` — no pydantic, no sleeps at zero latency, and zero-latency
streams go out in a single write. Faults, rate limits and prompt caching only cost
anything when they are switched on (or asked for by `x-sim-*` headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiohttp import web

from sluice.sim import anthropic_wire, openai_wire
from sluice.sim.config import SimModel
from sluice.sim.judge import judged
from sluice.sim.openai_wire import WireError
from sluice.sim.state import SimState, anthropic_limit_headers, openai_limit_headers
from sluice.sim.text import Answer, plan_answer, with_prefix, with_suffix
from sluice.tokens import count_prompt

Wire = Literal["openai", "anthropic"]
STATE: web.AppKey[SimState] = web.AppKey("sluice_sim_state", SimState)
SIM_HEADER = "x-sluice-simulator"
JSON = "application/json"
SSE_HEADERS = {SIM_HEADER: "true", "content-type": "text/event-stream", "cache-control": "no-cache"}
GARBAGE = b"data: {this is not json\n\n"
ANTHROPIC_GARBAGE = b"event: content_block_delta\ndata: {this is not json\n\n"


def headers_with(extra: dict[str, str] | None = None) -> dict[str, str]:
    headers = {SIM_HEADER: "true"}
    if extra:
        headers.update(extra)
    return headers


def error_response(
    wire: Wire,
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    if wire == "openai":
        body = openai_wire.error_body(status, message, code=code, param=param)
    else:
        body = anthropic_wire.error_body(status, message)
    return web.Response(status=status, body=body, content_type=JSON, headers=headers_with(headers))


def _number(headers: Any, name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _kill(request: web.Request, reset: bool) -> None:
    """Drop the connection: after flushing (cut) or at once with a TCP reset (refuse)."""
    transport = request.transport
    if transport is None:
        return
    if not reset:
        transport.close()
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


_FAULT_MESSAGES = {
    429: "Rate limit reached (simulated fault).",
    500: "The server had an error while processing your request (simulated fault).",
    502: "Bad gateway (simulated fault).",
    503: "The service is temporarily unavailable (simulated fault).",
    529: "Overloaded (simulated fault).",
}


def _early_fault(request: web.Request, wire: Wire, kind: str) -> web.StreamResponse | None:
    """Answer a fault that replaces the response; None when the request goes on."""
    if kind in ("hang", "malformed", "cut"):
        return None  # these shape the answer; see _complete and _stream
    if kind == "refuse":
        _kill(request, reset=True)
        return web.Response(status=500)
    status = int(kind)
    extra = None
    code = None
    if status == 429:
        extra = {"retry-after": request.headers.get("x-sim-retry-after", "1")}
        code = "rate_limit_exceeded"
    return error_response(wire, status, _FAULT_MESSAGES[status], code=code, headers=extra)


@dataclass(slots=True)
class _Turn:
    """One request in flight, once its answer is known."""

    wire: Wire
    model: SimModel
    body: dict[str, Any]
    answer: Answer
    prompt_tokens: int
    cache_read: int
    cache_write: int
    headers: dict[str, str]
    fault: str | None
    ttft_s: float  # includes the wait of a `hang` fault
    tps: float


async def _chat(request: web.Request, wire: Wire) -> web.StreamResponse:
    state = request.app[STATE]
    stats = state.stats
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error_response(wire, 400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
        return error_response(wire, 400, "model: a model name is required", param="model")
    name: str = body["model"]
    model = state.model(name)
    stats.requests_total += 1
    stats.last_traceparent = request.headers.get("traceparent")
    model_stats = stats.model(name)
    model_stats.requests += 1
    headers = request.headers
    fault = state.pick_fault(headers.get("x-sim-fault"))
    if fault is not None:
        state.note_fault(fault)
        early = _early_fault(request, wire, fault)
        if early is not None:
            return early
    try:
        prompt = (openai_wire if wire == "openai" else anthropic_wire).parse_request(body)
    except WireError as exc:
        return error_response(wire, 400, exc.message, param=exc.param)
    stats.last_prompt_text = prompt.texts[-1] if prompt.texts else None
    prompt_tokens = count_prompt(prompt.texts, prompt.n_messages)
    if prompt_tokens > model.context_window:
        message = (
            f"This model's maximum context length is {model.context_window} tokens, "
            f"but the prompt has {prompt_tokens} tokens."
        )
        return error_response(wire, 400, message, param="messages", code="context_length_exceeded")
    out_override = _number(headers, "x-sim-output-tokens")
    output_tokens = (
        model.output_tokens if out_override is None else min(max(int(out_override), 0), 1 << 20)
    )
    invalid = False
    invalid_n = _number(headers, "x-sim-invalid-json")
    if invalid_n is not None:
        invalid = state.invalid_json_due(headers.get("x-sim-key", ""), int(invalid_n))
        prompt.json_mode = True
    answer = plan_answer(
        prompt,
        output_tokens,
        state.config.seed,
        "call_" if wire == "openai" else "toolu_",
        invalid,
    )
    answer = _appended(_unsure(answer, name, headers.get("x-sim-uncertain")), headers)
    answer = judged(answer, prompt, headers)  # a judge's verdict follows fixed rules
    answer = _echo(answer, prompt.texts, headers.get("x-sim-echo"))
    extra: dict[str, str] = {SIM_HEADER: "true"}
    if model.limited:
        info = state.limiter.check(model, prompt_tokens + answer.output_tokens, time.monotonic())
        limit = openai_limit_headers(info) if wire == "openai" else anthropic_limit_headers(info)
        extra.update(limit)
        if info.exceeded is not None:
            extra["retry-after"] = str(info.retry_after_s)
            message = f"Rate limit reached for {name} on {info.exceeded} per min (simulated)."
            return error_response(wire, 429, message, code="rate_limit_exceeded", headers=extra)
    read = write = 0
    if wire == "openai":
        if prompt_tokens >= openai_wire.CACHE_MIN_TOKENS:
            read = openai_wire.cached_prefix_tokens(
                body, name, state.openai_cache, time.monotonic()
            )
    elif b'"cache_control"' in raw:
        read, write = anthropic_wire.cache_usage(
            body, name, state.anthropic_cache, time.monotonic()
        )
    model_stats.input_tokens += prompt_tokens
    model_stats.cache_read_tokens += read
    model_stats.cache_write_tokens += write
    ttft = _number(headers, "x-sim-ttft-ms")
    ttft_s = (model.ttft_ms if ttft is None else ttft) / 1000.0
    if fault == "hang":
        hang_s = _number(headers, "x-sim-hang-s")
        ttft_s += state.config.hang_s if hang_s is None else hang_s
    tps = _number(headers, "x-sim-tps")
    turn = _Turn(
        wire, model, body, answer, prompt_tokens, read, write, extra, fault, ttft_s,
        model.tokens_per_s if tps is None else tps,
    )  # fmt: skip
    if body.get("stream") is True:
        return await _stream(request, state, turn)
    return await _complete(request, state, turn)


def _appended(answer: Answer, headers: Mapping[str, str]) -> Answer:
    """`x-sim-append: [1][2]`: the answer ends with this text (grounded-chat citation tests)."""
    appended = headers.get("x-sim-append")
    return with_suffix(answer, " " + appended[:200].strip()) if appended else answer


def _unsure(answer: Answer, model: str, listed: str | None) -> Answer:
    """`x-sim-uncertain: gpt-4o-mini,other`: these models start their answer `UNCERTAIN: `
    (cascade routing tests)."""
    if listed and model in {v.strip() for v in listed.split(",")}:
        return with_prefix(answer, "UNCERTAIN: ")
    return answer


def _echo(answer: Answer, texts: list[str], asked: str | None) -> Answer:
    """`x-sim-echo: 1`: the answer starts with the request's last text (guardrails tests:
    what the model was sent comes back to the caller)."""
    return with_prefix(answer, texts[-1] + " ") if asked and texts else answer


def _logprob(request: web.Request, turn: _Turn) -> float | None:
    """Per-token logprob when the body asked for logprobs: `x-sim-logprob: model=-2.0,...`
    (default -0.1)."""
    if turn.body.get("logprobs") is not True:
        return None
    for item in request.headers.get("x-sim-logprob", "").split(","):
        model, _, value = item.partition("=")
        if model.strip() == turn.body["model"]:
            try:
                return float(value)
            except ValueError:
                break
    return -0.1


def _events(turn: _Turn) -> list[tuple[bytes, bool]]:
    model_name: str = turn.body["model"]
    if turn.wire == "openai":
        options = turn.body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        return openai_wire.stream_events(
            openai_wire.new_id(), int(time.time()), model_name, turn.answer,
            turn.prompt_tokens, turn.cache_read, include_usage,
        )  # fmt: skip
    return anthropic_wire.stream_events(
        anthropic_wire.new_id(), model_name, turn.answer,
        turn.prompt_tokens - turn.cache_read - turn.cache_write, turn.cache_read, turn.cache_write,
    )  # fmt: skip


async def _complete(request: web.Request, state: SimState, turn: _Turn) -> web.StreamResponse:
    answer = turn.answer
    delay = turn.ttft_s
    if turn.tps > 0:
        delay += answer.output_tokens / turn.tps
    if delay > 0:
        await asyncio.sleep(delay)
    model_name: str = turn.body["model"]
    if turn.wire == "openai":
        body = openai_wire.completion_body(
            openai_wire.new_id(), int(time.time()), model_name, answer,
            turn.prompt_tokens, turn.cache_read, _logprob(request, turn),
        )  # fmt: skip
    else:
        body = anthropic_wire.message_body(
            anthropic_wire.new_id(), model_name, answer,
            turn.prompt_tokens - turn.cache_read - turn.cache_write,
            turn.cache_read, turn.cache_write,
        )  # fmt: skip
    state.stats.model(model_name).output_tokens += answer.output_tokens
    if turn.fault == "malformed":
        body = body[: len(body) // 2]
    elif turn.fault == "cut":
        resp = web.StreamResponse(headers=turn.headers)
        resp.content_type = JSON
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        _kill(request, reset=False)
        return resp
    return web.Response(body=body, content_type=JSON, headers=turn.headers)


async def _stream(request: web.Request, state: SimState, turn: _Turn) -> web.StreamResponse:
    events = _events(turn)
    paced_total = sum(1 for _, paced in events if paced)
    stop_after = paced_total // 2 if turn.fault == "cut" else -1
    resp = web.StreamResponse(headers={**turn.headers, **SSE_HEADERS})
    stats = state.stats
    stats.open_streams += 1
    progress = _Progress()
    finished = False
    try:
        if turn.ttft_s > 0:
            await asyncio.sleep(turn.ttft_s)
        await resp.prepare(request)
        if turn.fault == "malformed":
            garbage = GARBAGE if turn.wire == "openai" else ANTHROPIC_GARBAGE
            await resp.write(events[0][0] + garbage)
        elif turn.tps <= 0 and stop_after < 0:
            await resp.write(b"".join(data for data, _ in events))
            progress.sent = paced_total
        else:
            await _paced(resp, events, turn.tps, stop_after, progress)
            if stop_after >= 0:
                _kill(request, reset=False)
                return resp
        await resp.write_eof()
        finished = True
    except asyncio.CancelledError:
        stats.streams_cancelled += 1
        raise
    except ConnectionResetError:
        stats.streams_cancelled += 1
    finally:
        stats.open_streams -= 1
        out = turn.answer.output_tokens
        tokens = out if finished or not paced_total else out * progress.sent // paced_total
        stats.model(turn.body["model"]).output_tokens += tokens
    return resp


class _Progress:
    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = 0  # paced events written so far


async def _paced(
    resp: web.StreamResponse,
    events: list[tuple[bytes, bool]],
    tps: float,
    stop_after: int,
    progress: _Progress,
) -> None:
    """Write events, one paced event per 1/tps seconds; stop after `stop_after` if ≥ 0."""
    loop = asyncio.get_running_loop()
    interval = 1.0 / tps if tps > 0 else 0.0
    start = loop.time()
    buffer: list[bytes] = []
    queued = 0
    for data, paced in events:
        if paced:
            if progress.sent + queued == stop_after:
                break
            wait = start + (progress.sent + queued) * interval - loop.time()
            if wait > 0:
                if buffer:
                    await resp.write(b"".join(buffer))
                    buffer.clear()
                    progress.sent += queued
                    queued = 0
                await asyncio.sleep(wait)
            queued += 1
        buffer.append(data)
    if buffer:
        await resp.write(b"".join(buffer))
        progress.sent += queued


async def _counted(request: web.Request, wire: Wire) -> web.StreamResponse:
    """`_chat`, tracked in the in-flight gauge (tests assert the gateway cancels calls)."""
    stats = request.app[STATE].stats
    stats.in_flight += 1
    try:
        return await _chat(request, wire)
    except asyncio.CancelledError:
        stats.requests_cancelled += 1
        raise
    finally:
        stats.in_flight -= 1


async def openai_chat(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions"""
    return await _counted(request, "openai")


async def anthropic_messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages"""
    return await _counted(request, "anthropic")
