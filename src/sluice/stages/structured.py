"""Structured-output stage: valid JSON or a clear 422, never a silent bad answer.

The upstream call is made without streaming (a stream would have to be taken back when the
JSON turns out invalid); a streaming caller gets the validated answer replayed as SSE. On an
invalid answer the model is asked again with the validation errors (`max_repairs` times, even
when it repeats itself); if it repeats the same invalid answer and the plan has another model,
that model gets the original request instead (an escalation, counted apart from repairs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sluice.errors import UnprocessableError
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.replay import events_from_response
from sluice.structured import (
    answer_digest,
    check,
    output_spec,
    repair_turns,
    with_clean_answer,
)
from sluice.types import ChatResponse


class StructuredOutputStage:
    def __init__(self, max_repairs: int, plan_length: Callable[[str], int]) -> None:
        self._max_repairs = max_repairs
        self._plan_length = plan_length

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        spec = output_spec(ctx.request)
        if spec is None:
            return await nxt(ctx)
        wants_stream = ctx.request.stream
        original = dataclasses.replace(ctx.request, stream=False)
        ctx.rewrite(original, "structured output: validated whole")
        seen: set[str] = set()
        repairs = escalations = 0
        models = self._plan_length(original.model)
        while True:
            result = await nxt(ctx)
            assert isinstance(result, ChatResponse)  # the request is not streamed
            if ctx.degraded:
                return events_from_response(result) if wants_stream else result
            clean, errors = check(result, spec)
            if clean is not None:
                break
            digest = answer_digest(result, spec)
            repeated = digest in seen
            seen.add(digest)
            if repeated and ctx.skip_models + 1 < models:
                ctx.skip_models += 1  # the model repeats itself: the next model, fresh
                ctx.rewrite(original, "structured output: next model")
                escalations += 1
            elif repairs < self._max_repairs:  # every repair allowed is used, repeat or not
                repair = ctx.request.messages + repair_turns(result, spec, errors)
                ctx.rewrite(
                    dataclasses.replace(ctx.request, messages=repair), "structured output: repair"
                )
                repairs += 1
            else:
                _count(ctx, repairs, escalations)
                raise UnprocessableError(
                    f"the model's answer did not satisfy the requested "
                    f"{'tool input schema' if spec.kind == 'tool' else 'JSON format'} after "
                    f"{repairs} repair(s): " + "; ".join(errors),
                    code="structured_output_invalid",
                )
        _count(ctx, repairs, escalations)
        answer = with_clean_answer(result, spec, clean)
        return events_from_response(answer) if wants_stream else answer


def _count(ctx: CallContext, repairs: int, escalations: int) -> None:
    """`x-sluice-repairs`: repair turns only; moves to the next model are escalations."""
    ctx.response_headers["x-sluice-repairs"] = str(repairs)
    if escalations:
        ctx.response_headers["x-sluice-escalations"] = str(escalations)
