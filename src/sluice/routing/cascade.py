"""Cascade: answer with the cheap target, escalate to the strong one when the answer is unsure.

Unsure means: the answer starts with the configured marker (e.g. `UNCERTAIN`), or its mean
token logprob is below the threshold (providers that return logprobs), or structured-output
validation failed. Both calls go through the rest of the pipeline (`nxt` twice), so each is
settled, costed and recorded as an attempt; only the final answer reaches the client, with
the marker stripped. The calls are made without streaming (an answer must be inspected
before it is sent); a streaming caller gets the final answer replayed as SSE.
"""

from __future__ import annotations

import dataclasses

from sluice.errors import UnprocessableError
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.replay import events_from_response
from sluice.routing.config import CascadeConfig
from sluice.types import ChatRequest, ChatResponse, TextPart

DECISION_HEADER = "x-sluice-route-decision"


async def run_cascade(ctx: CallContext, nxt: Handler, cfg: CascadeConfig) -> Result:
    wants_stream = ctx.request.stream
    original = dataclasses.replace(ctx.request, stream=False)
    ctx.rewrite(_cheap_request(original, cfg), "cascade: cheap model first")
    reason: str | None
    try:
        first = await nxt(ctx)
    except UnprocessableError as err:
        if not (cfg.on_invalid_output and err.code == "structured_output_invalid"):
            raise
        reason = "invalid structured output"
    else:
        assert isinstance(first, ChatResponse)  # the request is not streamed
        reason = uncertainty(first, cfg)
        if reason is None or ctx.degraded:
            return _deliver(strip_marker(first, cfg.marker), wants_stream)
    _note(ctx, f"escalated ({reason}) -> {cfg.strong}")
    ctx.skip_models = 0
    ctx.rewrite(dataclasses.replace(original, model=cfg.strong), "cascade: escalated")
    final = await nxt(ctx)
    assert isinstance(final, ChatResponse)
    return _deliver(strip_marker(final, cfg.marker), wants_stream)


def uncertainty(answer: ChatResponse, cfg: CascadeConfig) -> str | None:
    """Why the cheap answer should not be trusted; None when it should."""
    if cfg.marker and answer_text(answer).lstrip().startswith(cfg.marker):
        return f"marker {cfg.marker}"
    if cfg.min_mean_logprob is not None and answer.logprobs:
        mean = sum(answer.logprobs) / len(answer.logprobs)
        if mean < cfg.min_mean_logprob:
            return f"mean logprob {mean:.2f} < {cfg.min_mean_logprob}"
    return None


def strip_marker(answer: ChatResponse, marker: str | None) -> ChatResponse:
    """The answer without its leading marker (and the `:`/space that follow it)."""
    if not marker:
        return answer
    parts = list(answer.parts)
    for i, part in enumerate(parts):
        if not isinstance(part, TextPart):
            continue
        text = part.text.lstrip()
        if text.startswith(marker):
            rest = text[len(marker) :].lstrip(" :-\u2014\n\t")
            parts[i] = dataclasses.replace(part, text=rest)
            return dataclasses.replace(answer, parts=parts)
        if text:
            break
    return answer


def answer_text(answer: ChatResponse) -> str:
    return "".join(p.text for p in answer.parts if isinstance(p, TextPart))


def _cheap_request(original: ChatRequest, cfg: CascadeConfig) -> ChatRequest:
    req = dataclasses.replace(original, model=cfg.cheap)
    if cfg.instruction:
        req = dataclasses.replace(req, system=[*req.system, TextPart(cfg.instruction)])
    if cfg.min_mean_logprob is not None and req.meta.wire == "openai":
        req = dataclasses.replace(req, extras={**req.extras, "logprobs": True})
    return req


def _note(ctx: CallContext, text: str) -> None:
    ctx.route_decision = f"{ctx.route_decision}; cascade: {text}"
    ctx.response_headers[DECISION_HEADER] = ctx.route_decision


def _deliver(answer: ChatResponse, wants_stream: bool) -> Result:
    return events_from_response(answer) if wants_stream else answer
