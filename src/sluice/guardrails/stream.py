"""The answer as a stream: output checks on a rolling window, placeholders restored.

At most `output.window_tokens` (4 characters each) of text is held back, and only while an
output check is on; restoring alone holds at most one placeholder's length. A private key
is held from its BEGIN line until its END line (it is only recognized whole); tool-call
arguments and thinking are held and checked whole.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any

from sluice.guardrails.base import GuardCall, Verdict
from sluice.guardrails.checks import LeakDetector, html_safe_cut, sanitize_html
from sluice.guardrails.mask import Masker, StreamRestorer, json_answer
from sluice.guardrails.pii import Span, find, replace_spans
from sluice.guardrails.plan import Ask, Plan, Verdicts, hit, run_guards
from sluice.pipeline.context import CURRENT_CALL, CallContext
from sluice.types import (
    EventStream,
    Finish,
    Flush,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
)

CHARS_PER_TOKEN = 4
CONTEXT_CHARS = 128  # sent text kept for checks across the cut (a leak's first words)
CHECK_STEP_CHARS = 64  # a stream's window is checked each time this much text came
PEM_BEGIN = "-----BEGIN"
PEM_END = re.compile(r"-----END [A-Z0-9 ]{1,64}-----")  # a whole END line
PEM_HOLD_CHARS = 16_384 + 256  # the PEM shape's longest body (`pii.PATTERN`) and its lines
HTML_HOLD_CHARS = 4096  # the longest open element a stream holds back to sanitize whole


class GuardedStream:
    """The answer's events with output checks on a rolling window and placeholders
    restored; closes the stream under it when closed."""

    def __init__(
        self,
        ask: Ask | None,
        ctx: CallContext,
        plan: Plan,
        verdicts: Verdicts,
        masker: Masker | None,
        leak: LeakDetector | None,
        inner: EventStream,
    ) -> None:
        self._ask, self._ctx, self._plan = ask, ctx, plan
        self._verdicts = verdicts
        self._masker = masker
        self._leak = leak
        self._inner = inner
        self._hold = plan.cfg.output.window_tokens * CHARS_PER_TOKEN if plan.holds_output else 0
        # Text is let go once this much more than the window is waiting (1: restore only).
        self._step = max(1, min(CHECK_STEP_CHARS, self._hold // 2))
        self._scan = plan.cfg.output.secrets != "off" or plan.cfg.pii.output != "off"
        self._pending = ""  # model text not yet sent
        self._context = ""  # the last sent model text, for checks across the cut
        self._answer: list[str] = []  # the whole model text (output guards at the end)
        # Each delta's logprobs (they carry its tokens' text) with the offset in the model
        # text where that delta ends: they go out only once all of it has been released.
        self._logprobs: list[tuple[int, list[dict[str, Any]]]] = []
        self._received = 0  # model text received, characters
        self._released = 0  # model text released, characters
        self._text = (
            StreamRestorer(masker, json_string=json_answer(ctx.request))
            if masker is not None
            else None
        )
        self._args: dict[int, StreamRestorer] = {}
        # With a secret or leak check on, a tool call's argument fragments wait for the
        # call's end and are checked whole (arguments are only usable whole anyway).
        self._judge_args = plan.cfg.output.secrets != "off" or leak is not None
        self._held_args: dict[int, list[str]] = {}
        self._thinking: list[ThinkingDelta] = []  # held like arguments, checked whole
        self._flagged: set[str] = set()
        self._pii_out: set[str] = set()
        self._gen = self._run()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    def __anext__(self) -> Awaitable[StreamEvent]:
        return self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        try:
            async for event in self._inner:
                if self._thinking and not isinstance(event, ThinkingDelta | Flush):
                    for held_thinking in self._release_thinking():
                        yield held_thinking
                if isinstance(event, ThinkingDelta) and self._judge_args:
                    self._thinking.append(event)
                    continue
                if isinstance(event, TextDelta):
                    self._pending += event.text
                    self._answer.append(event.text)
                    self._received += len(event.text)
                    if event.logprobs:
                        self._logprobs.append((self._received, event.logprobs))
                    # Checked in steps, not per delta: a window check costs ~0.1 ms.
                    if len(self._pending) - self._hold >= self._step:
                        out = self._release(final=False)
                        if out is not None:
                            yield out
                    continue
                if isinstance(event, ToolCallDelta) and (self._judge_args or self._masker):
                    delta = self._tool_delta(event)
                    if delta is not None:
                        yield delta
                    continue
                if isinstance(event, Flush):
                    yield event
                    continue
                # Any other event: what is held goes first, whole.
                for held in self._held_out():
                    yield held
                if isinstance(event, Finish):
                    await self._at_finish()
                yield event
            for held in self._held_out():
                yield held
        finally:
            await self._inner.aclose()

    def _release_thinking(self) -> list[ThinkingDelta]:
        """The thinking held so far, checked whole (raises on a block), in its order."""
        held, self._thinking = self._thinking, []
        text = "".join(e.thinking for e in held)
        self._check(text, find(text) if self._plan.cfg.output.secrets != "off" else [])
        return held

    def _tool_delta(self, event: ToolCallDelta) -> ToolCallDelta | None:
        """A tool call's argument fragment: held whole for the output checks, or restored
        as it comes (None: nothing to send yet)."""
        if self._judge_args:
            self._held_args.setdefault(event.index, []).append(event.arguments)
            return None
        assert self._masker is not None
        restorer = self._args.setdefault(
            event.index, StreamRestorer(self._masker, json_string=True)
        )
        text = restorer.feed(event.arguments)
        return ToolCallDelta(event.index, text) if text else None

    def _held_out(self) -> list[TextDelta | ToolCallDelta | ThinkingDelta]:
        """Everything held back, checked and restored: before any event that is not a delta."""
        out: list[TextDelta | ToolCallDelta | ThinkingDelta] = list(self._release_thinking())
        text = self._release(final=True)
        if text is not None:
            out.append(text)
        out.extend(self._release_args())
        for index, restorer in self._args.items():
            rest = restorer.flush()
            if rest:
                out.append(ToolCallDelta(index, rest))
        return out

    def _release_args(self) -> list[ToolCallDelta]:
        """Held tool-call arguments, checked whole, then restored (raises on a block)."""
        if not self._held_args:
            return []
        held, self._held_args = self._held_args, {}
        out: list[ToolCallDelta] = []
        for index, pieces in held.items():
            args = "".join(pieces)
            self._check(args, find(args) if self._plan.cfg.output.secrets != "off" else [])
            if self._masker is not None:
                args = self._masker.restore(args, json_string=True)
            if args:
                out.append(ToolCallDelta(index, args))
        return out

    def _release(self, *, final: bool) -> TextDelta | None:
        """Check the window, then the text that may go now (restored), or None."""
        pending = self._pending
        plan = self._plan
        cut = len(pending) if final else max(0, len(pending) - self._hold)
        spans: list[Span] = []
        if self._hold:
            window = self._context + pending
            base = len(self._context)
            found = find(window) if self._scan else []
            self._check(window, found)
            if plan.cfg.pii.output != "off":
                spans = [s for s in found if s.end > base]
                for s in spans:
                    if s.start - base < cut < s.end - base:
                        cut = max(0, s.start - base)  # never send half of a value
                spans = [
                    dataclasses.replace(s, start=max(s.start, base) - base, end=s.end - base)
                    for s in spans
                    if s.start - base < cut
                ]
                self._pii_out.update(s.entity for s in spans)
        if plan.cfg.output.secrets != "off" and not final:
            # A PEM key is only recognized whole (its END line): from an open BEGIN on,
            # nothing goes out until the END arrives or the block is too long to be a key.
            window = self._context + pending
            at = window.rfind(PEM_BEGIN)
            if (
                at != -1
                and PEM_END.search(window, at) is None
                and len(window) - at <= PEM_HOLD_CHARS
            ):
                cut = min(cut, max(0, at - len(self._context)))
        if plan.cfg.output.html == "sanitize" and not final:
            # An element still open at the cut waits for its end: each piece is sanitized
            # alone, and half a tag would be escaped, half a <script> let through as text.
            cut = html_safe_cut(pending, cut, HTML_HOLD_CHARS)
        if cut == 0 and not final:
            return None
        seg, self._pending = pending[:cut], pending[cut:]
        logprobs = self._released_logprobs(
            cut, masked=bool(spans) and plan.cfg.pii.output == "mask"
        )
        if self._hold:
            self._context = (self._context + seg)[-CONTEXT_CHARS:]
        if spans and plan.cfg.pii.output == "mask":
            seg = replace_spans(seg, spans)
        if self._text is not None:
            seg = self._text.feed(seg) + (self._text.flush() if final else "")
        if plan.cfg.output.html == "sanitize" and seg:
            seg = sanitize_html(seg)
        if not seg:
            return None
        return TextDelta(seg, logprobs=logprobs)

    def _released_logprobs(self, cut: int, masked: bool) -> list[dict[str, Any]] | None:
        """The logprobs of the deltas now wholly released; none where a value was masked
        (their tokens spell it)."""
        self._released += cut
        out: list[dict[str, Any]] = []
        while self._logprobs and self._logprobs[0][0] <= self._released:
            out.extend(self._logprobs.pop(0)[1])
        return None if masked or not out else out

    def _check(self, window: str, found: list[Span]) -> None:
        out = self._plan.cfg.output
        secret = any(s.entity == "SECRET" for s in found)
        if out.secrets != "off" and "output_secrets" not in self._flagged and secret:
            self._flagged.add("output_secrets")
            hit("output_secrets", out.secrets, "secret", self._verdicts)
        if (
            self._leak is not None
            and "system_prompt_leak" not in self._flagged
            and self._leak.leaks(window)
        ):
            self._flagged.add("system_prompt_leak")
            hit("system_prompt_leak", out.system_prompt_leak, "leak", self._verdicts)

    async def _at_finish(self) -> None:
        cfg = self._plan.cfg
        if cfg.pii.output != "off":
            rule = "+".join(sorted(self._pii_out)) or None
            outcome = "pass" if not self._pii_out else cfg.pii.output
            self._verdicts.add(Verdict("pii_output", outcome, rule=rule))
        if any("output" in phases for _, _, phases in self._plan.guards):
            ctx = self._ctx
            call = GuardCall(
                request=ctx.request,
                tenant=ctx.identity.tenant,
                model=ctx.request.model,
                phase="output",
                answer="".join(self._answer),
                helper_call=self._ask,
            )
            token = CURRENT_CALL.set(ctx)
            try:
                await run_guards(self._plan, call, "output", self._verdicts)
            finally:
                CURRENT_CALL.reset(token)
