"""Structured-output stage: valid JSON or a clear 422, never a silent bad answer.

The upstream call is made without streaming (a stream would have to be taken back when the
JSON turns out invalid); a streaming caller gets the validated answer replayed as SSE. On an
invalid answer the model is asked again with the validation errors (up to `max_repairs`);
if it repeats the same invalid answer, the next model of the plan gets the original request.
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
        repairs = 0
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
            elif repairs < self._max_repairs and not repeated:
                repair = ctx.request.messages + repair_turns(result, spec, errors)
                ctx.rewrite(
                    dataclasses.replace(ctx.request, messages=repair), "structured output: repair"
                )
            else:
                ctx.response_headers["x-sluice-repairs"] = str(repairs)
                raise UnprocessableError(
                    f"the model's answer did not satisfy the requested "
                    f"{'tool input schema' if spec.kind == 'tool' else 'JSON format'} after "
                    f"{repairs} repair(s): " + "; ".join(errors),
                    code="structured_output_invalid",
                )
            repairs += 1
        ctx.response_headers["x-sluice-repairs"] = str(repairs)
        answer = with_clean_answer(result, spec, clean)
        return events_from_response(answer) if wants_stream else answer
