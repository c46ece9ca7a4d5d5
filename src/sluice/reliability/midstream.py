"""Mid-stream failover: a stream cut after its first byte continues on another deployment.

Before the first byte the executor retries and falls back invisibly; after it, the client
already holds part of the answer. When the upstream fails then (a cut connection, a
malformed event, an idle timeout) and the plan has another deployment, this stage asks it
to *continue* the partial answer and streams the continuation as the same client stream:

- Anthropic upstreams: the partial answer as an assistant prefill (trailing whitespace
  trimmed, as the API requires; the continuation's leading whitespace is then dropped);
- OpenAI upstreams: the partial answer as an assistant message and a user instruction to
  continue exactly where it stopped; a continuation that repeats the tail of the partial
  answer is trimmed so no text is repeated;
- nothing but the stream's start was sent: the call is simply restarted elsewhere;
- any part of a tool call (or thinking) was sent: no continuation — the stream ends with
  the API's error event, as before.

It sits outside the settle stage, so each attempt is settled and charged on its own (the cut
one for what it delivered). Opt out per model with `midstream_failover: false`.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

from sluice.config import ModelPlanConfig
from sluice.errors import SluiceError, UpstreamError, UpstreamTimeoutError
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.tokens import count_text
from sluice.types import (
    FLUSH,
    ChatRequest,
    ChatResponse,
    EventStream,
    Message,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ToolCallDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
    next_batch,
)

CONTINUE_PROMPT = (
    "Your previous answer was cut off. Continue it exactly where it stopped: do not repeat "
    "anything already written, do not add any preface; start with the next character."
)
MAX_RESUMES = 3
_MIN_OVERLAP = 12  # characters a repeated tail must have before it is trimmed
_OVERLAP_WINDOW = 80  # characters of a continuation examined for a repeated tail


class MidstreamFailoverStage:
    def __init__(
        self,
        plans: dict[str, ModelPlanConfig],
        has_alternative: Callable[[CallContext, set[str]], bool],
    ) -> None:
        self._plans = plans
        self._has_alternative = has_alternative
        # cut: streams that failed after the first byte; continued/restarted: resumed
        # elsewhere; completed: resumed streams that then ended normally; refused: not
        # resumed (tool call sent, opted out, no other deployment, caller's deadline).
        self.stats: Counter[str] = Counter()

    def enabled_for(self, model: str) -> bool:
        plan = self._plans.get(model)
        return plan is None or plan.midstream_failover

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        result = await nxt(ctx)
        if isinstance(result, ChatResponse) or not self.enabled_for(ctx.request.model):
            return result
        serving = {ctx.deployment.id} if ctx.deployment is not None else set()
        if not self._has_alternative(ctx, serving):
            return result  # a plan of one deployment: nowhere to continue, no wrapper cost
        return ResumingStream(ctx, nxt, result, self)

    def may_resume(self, ctx: CallContext, err: SluiceError) -> bool:
        if not isinstance(err, UpstreamError) or _callers_deadline(ctx, err):
            return False
        return self._has_alternative(ctx, ctx.exclude_deployments)


class ResumingStream:
    """The client's one stream over one or more upstream attempts."""

    __slots__ = ("_ctx", "_earlier", "_inner", "_lead", "_nxt", "_pending", "_resumes",
                 "_sent", "_skip_start", "_stage", "_tool_sent")  # fmt: skip

    def __init__(
        self, ctx: CallContext, nxt: Handler, inner: EventStream, stage: MidstreamFailoverStage
    ) -> None:
        self._ctx = ctx
        self._nxt = nxt
        self._inner = inner
        self._stage = stage
        self._sent: list[str] = []  # text passed to the client so far
        self._tool_sent = False  # any tool-call or thinking event passed to the client
        self._skip_start = False
        self._resumes = 0
        self._lead = ""  # whitespace the prefill dropped: strip it from the continuation
        self._pending: str | None = None  # a continuation's head, checked for repetition
        self._earlier: Usage | None = None  # what the attempts before this one were charged

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        while True:
            try:
                event = await anext(self._inner)
            except StopAsyncIteration:
                if self._pending:
                    text, self._pending = self._trimmed(self._pending), None
                    if text:
                        self._sent.append(text)
                        return TextDelta(text)
                if self._resumes:
                    self._stage.stats["completed"] += 1
                raise
            except SluiceError as err:
                await self._resume(err)
                continue
            out = self._pass(event)
            if out is not None:
                return out

    async def next_batch(self) -> list[StreamEvent]:
        """`__anext__` for the events of one read of the inner stream."""
        while True:
            try:
                batch = await next_batch(self._inner)
            except StopAsyncIteration:
                if self._pending:
                    text, self._pending = self._trimmed(self._pending), None
                    if text:
                        self._sent.append(text)
                        return [TextDelta(text)]
                if self._resumes:
                    self._stage.stats["completed"] += 1
                raise
            except SluiceError as err:
                await self._resume(err)
                continue
            out: list[StreamEvent] = []
            for i, event in enumerate(batch):
                inner = self._inner
                passed = self._pass(event)
                if self._inner is not inner:  # `event` was put back in front: so is the rest
                    assert isinstance(self._inner, _Prepended)
                    self._inner.extend(batch[i + 1 :])
                    if passed is not None:
                        out.append(passed)
                    break
                if passed is not None:
                    out.append(passed)
            if out:
                return out

    def _pass(self, event: StreamEvent) -> StreamEvent | None:
        """The event as the client gets it (None: swallowed)."""
        if isinstance(event, StreamStart) and self._skip_start:
            self._skip_start = False  # the client already has its stream's start
            return None
        if isinstance(event, UsageUpdate) and self._earlier is not None:
            event = UsageUpdate(_plus(self._earlier, event.usage))  # usage shows every attempt
        if isinstance(event, TextDelta):
            if self._pending is not None:
                self._pending += event.text
                if len(self._pending) < _OVERLAP_WINDOW:
                    return None
                text, self._pending = self._trimmed(self._pending), None
                event = TextDelta(text)
            if not event.text:
                return None
            self._sent.append(event.text)
            return event
        if event is FLUSH and self._pending is not None:
            return None  # still collecting the continuation's head
        if isinstance(event, ToolCallStart | ToolCallDelta | ThinkingDelta):
            self._tool_sent = True
        if self._pending:  # anything else ends the head of a continuation
            text, self._pending = self._trimmed(self._pending), None
            if text:
                self._sent.append(text)
                self._inner = _Prepended(event, self._inner)  # the event comes next
                return TextDelta(text)
        self._pending = None
        return event

    def _trimmed(self, head: str) -> str:
        """A continuation's head without the whitespace the prefill dropped, and without
        a repeat of the tail of what the client already has."""
        if self._lead:
            head, self._lead = head.lstrip(), ""
        sent = "".join(self._sent)
        for size in range(min(len(head), len(sent)), _MIN_OVERLAP - 1, -1):
            if sent.endswith(head[:size]):
                return head[size:]
        return head

    async def _resume(self, err: SluiceError) -> None:
        ctx, stage = self._ctx, self._stage
        if self._resumes == 0:  # streams, not failures: a continuation may be cut again
            stage.stats["cut"] += 1
        failed = ctx.deployment.id if ctx.deployment is not None else None
        if ctx.attempt_log and ctx.attempt_log[-1].status < 400:
            ctx.attempt_log[-1].status = err.http_status
            ctx.attempt_log[-1].error_type = err.code
        if failed is not None:  # not the one that just failed (an earlier one may serve again)
            ctx.exclude_deployments = {failed}
        if self._tool_sent or self._resumes >= MAX_RESUMES or not stage.may_resume(ctx, err):
            stage.stats["refused"] += 1
            raise err
        partial = "".join(self._sent)
        ctx.rewrite_for = _continuation(ctx.request, partial) if partial else None
        self._lead = partial[len(partial.rstrip()) :] if partial else ""
        try:
            result = await self._nxt(ctx)
        except SluiceError:
            stage.stats["failed"] += 1
            raise err from None
        finally:
            ctx.rewrite_for = None
        if isinstance(result, ChatResponse):  # a degrade answer: the plan had nothing left
            stage.stats["failed"] += 1
            raise err
        self._resumes += 1
        self._earlier = dataclasses.replace(ctx.usage)  # settled: every attempt so far
        stage.stats["continued" if partial else "restarted"] += 1
        self._inner = result
        self._skip_start = True
        self._pending = "" if partial else None

    async def end_early(self) -> None:
        early = getattr(self._inner, "end_early", None)
        if early is not None:
            await early()

    async def aclose(self) -> None:
        await self._inner.aclose()


def _callers_deadline(ctx: CallContext, err: SluiceError) -> bool:
    raw = ctx.request.meta.headers.get("x-sluice-timeout-ms")
    if raw is None or not isinstance(err, UpstreamTimeoutError):
        return False
    try:
        return (time.perf_counter() - ctx.started) * 1000 >= float(raw) - 5
    except ValueError:
        return False


def _continuation(req: ChatRequest, partial: str) -> Callable[[str], ChatRequest]:
    """The request that asks a deployment of `kind` to continue `partial`."""
    left = None if req.max_tokens is None else max(req.max_tokens - count_text(partial), 16)

    def for_kind(kind: str) -> ChatRequest:
        messages = list(req.messages)
        if kind == "anthropic":
            prefill = partial.rstrip()
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant" and _all_text(last):
                joined = "".join(p.text for p in last.parts if isinstance(p, TextPart)) + prefill
                messages[-1] = Message("assistant", [TextPart(joined)])
            else:
                messages.append(Message("assistant", [TextPart(prefill)]))
        else:
            messages.append(Message("assistant", [TextPart(partial)]))
            messages.append(Message("user", [TextPart(CONTINUE_PROMPT)]))
        return dataclasses.replace(req, messages=messages, max_tokens=left, stream=True)

    return for_kind


def _plus(a: Usage, b: Usage) -> Usage:
    return Usage(
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.cache_read_tokens + b.cache_read_tokens,
        a.cache_write_tokens + b.cache_write_tokens,
    )


def _all_text(msg: Message) -> bool:
    return all(isinstance(p, TextPart) for p in msg.parts)


class _Prepended:
    """`first` (and any events added after it), then the rest of `rest` (closable, and
    settled early through it)."""

    __slots__ = ("_first", "_rest")

    def __init__(self, first: StreamEvent, rest: EventStream) -> None:
        self._first: list[StreamEvent] = [first]
        self._rest = rest

    def extend(self, events: list[StreamEvent]) -> None:
        self._first.extend(events)

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._first:
            return self._first.pop(0)
        return await anext(self._rest)

    async def next_batch(self) -> list[StreamEvent]:
        if self._first:
            events, self._first = self._first, []
            return events
        return await next_batch(self._rest)

    async def end_early(self) -> None:
        early = getattr(self._rest, "end_early", None)
        if early is not None:
            await early()

    async def aclose(self) -> None:
        await self._rest.aclose()
