"""The answer as a stream: output checks on a rolling window, placeholders restored.

`output.window_tokens` (4 characters each) of text is held back — plus up to one check step
and the rest of the delta that crossed it — and only while an output check is on; restoring
alone holds at most one placeholder's length. A private key is held from its BEGIN line
until its END line (it is only recognized whole); tool-call arguments and thinking are held
and checked whole. Each check scans only the new text and a short overlap before it
(`_rescan`), so a stream costs about one scan of its text whatever its chunking.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any

from sluice.guardrails.base import GuardCall, Verdict
from sluice.guardrails.checks import LeakDetector, html_safe_cut, sanitize_html
from sluice.guardrails.citations import MarkerTrack, restored_citation
from sluice.guardrails.mask import Masker, StreamRestorer, json_answer
from sluice.guardrails.pii import AT_SIGNS, LOCAL_PART, Span, find, replace_spans
from sluice.guardrails.plan import Ask, Plan, Verdicts, hit, run_guards
from sluice.pipeline.context import CURRENT_CALL, CallContext
from sluice.types import (
    CitationDelta,
    EventStream,
    Finish,
    Flush,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolCallDelta,
    UsageUpdate,
)

CHARS_PER_TOKEN = 4
CONTEXT_CHARS = 128  # sent text kept for checks across the cut (a leak's first words)
# Each check scans the new text and this much before it: longer than every value's shape
# except an e-mail address with a long domain and a private key (handled by their anchors).
OVERLAP_CHARS = 128
EMAIL_MAX_CHARS = 64 + 1 + 8 * 64 + 24  # `pii.PATTERN`'s longest e-mail address
LOOKBACK_CHARS = 1024  # sent text a check may look back at (an e-mail's `@`, a leak)
TRIM_CHARS = 1024  # the buffer drops text it no longer needs in steps of at least this
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
        # The model text from `_base` on (characters counted from the answer's start): the
        # held text, and before it what the checks still look back at (`CONTEXT_CHARS`).
        self._buf = ""
        self._base = 0
        # Spans found so far (answer positions, in order) and how far the text was scanned:
        # each check scans only the new text and `OVERLAP_CHARS` before it.
        self._spans: list[Span] = []
        self._scanned = 0
        self._leak_from = 0  # where the last words not yet seen in a full shingle start
        self._answer: list[str] = []  # the whole model text (output guards at the end)
        self._keep_answer = any("output" in phases for _, _, phases in plan.guards)
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
        # Usage updates and citations that came while text was held: (model text received
        # when each came, the event), sent once that text has gone out.
        self._side: list[tuple[int, StreamEvent]] = []
        self._finish: Finish | None = None
        # When the text changes on its way (restored, masked, sanitized), a `file_citation`'s
        # position moves with it: the markers are tracked on both sides.
        changes = (
            masker is not None
            or plan.cfg.pii.output == "mask"
            or plan.cfg.output.html == "sanitize"
        )
        self._marks = MarkerTrack() if changes else None
        self._gen = self._run()

    @staticmethod
    def needed(plan: Plan, masker: Masker | None) -> bool:
        """Whether a stream has anything to check, hold or restore (else it goes as it is)."""
        return (
            plan.holds_output
            or masker is not None
            or plan.cfg.output.html != "off"
            or any("output" in phases for _, _, phases in plan.guards)
        )

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        # `async for` drives the generator itself: no extra Python frame per event.
        return self._gen

    def __anext__(self) -> Awaitable[StreamEvent]:
        return self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    async def _run(self) -> AsyncGenerator[StreamEvent, None]:
        # The common events first, by exact type (a delta per token, a flush per read). A
        # flush goes on only when something went out since the last one: while text is
        # held, the layers above (and the server) have nothing to write for it.
        direct = not self._hold and self._plan.cfg.output.html == "off"
        fresh = True  # an event went out since the last flush
        try:
            async for event in self._inner:
                kind = type(event)
                if kind is Flush:
                    if fresh:
                        fresh = False
                        yield event
                    continue
                if self._thinking and kind is not ThinkingDelta:
                    fresh = True
                    for held_thinking in self._release_thinking():
                        yield held_thinking
                if kind is TextDelta:
                    assert isinstance(event, TextDelta)
                    out = self._text_delta(event, direct)
                    if out is not None:
                        fresh = True
                        yield out
                        for side in self._side_out(final=False):
                            yield side
                    continue
                if isinstance(event, ThinkingDelta) and self._judge_args:
                    self._thinking.append(event)
                    continue
                if isinstance(event, ToolCallDelta) and (self._judge_args or self._masker):
                    delta = self._tool_delta(event)
                    if delta is not None:
                        fresh = True
                        yield delta
                    continue
                # Any other event: what is held goes first, whole (but a side event).
                fresh = True
                for out_event in await self._other(event, direct):
                    yield out_event
            for held in self._held_out():
                yield held
            if self._finish is not None:  # the output guards see the whole answer first
                await self._at_finish()
                yield self._finish
        finally:
            await self._inner.aclose()

    async def _other(self, event: StreamEvent, direct: bool) -> list[StreamEvent]:
        """What goes out for an event that is not a delta: the held text first, whole —
        but side events inside the text (usage on every chunk from some upstreams, a
        citation) never open the window: each waits for the text before it to go out."""
        if type(event) is UsageUpdate or type(event) is CitationDelta:
            if direct or self._released >= self._received:
                return [self._moved(event)]
            self._side.append((self._received, event))
            return []
        if isinstance(event, Finish):
            # The text goes out now, the finish last — after the output guards ran on the
            # whole answer: text an upstream sends after its finish chunk would otherwise
            # never be judged (and a placeholder it completes is still restored).
            self._finish = event
            return self._held_out(ended=False)
        out = self._held_out()
        out.append(event)
        return out

    def _side_out(self, *, final: bool) -> list[StreamEvent]:
        """The side events whose text has gone out (all of them when `final`)."""
        side = self._side
        if not side:
            return []
        n = len(side) if final else 0
        while not final and n < len(side) and side[n][0] <= self._released:
            n += 1
        out = [self._moved(event) for _, event in side[:n]]
        del side[:n]
        return out

    def _moved(self, event: StreamEvent) -> StreamEvent:
        """A side event as it goes out: a citation with its position in the caller's text."""
        if self._marks is None or not isinstance(event, CitationDelta):
            return event
        cite = self._marks.move(event.citation)
        if self._masker is not None:
            cite = restored_citation(cite, self._masker.restore)
        return event if cite is event.citation else CitationDelta(cite)

    def _text_delta(self, event: TextDelta, direct: bool) -> TextDelta | None:
        """Take a delta of answer text; what may go out now, if anything."""
        text = event.text
        self._received += len(text)
        if self._marks is not None:
            self._marks.model(text)
        if event.logprobs:
            self._logprobs.append((self._received, event.logprobs))
        if self._keep_answer:
            self._answer.append(text)
        if direct:  # restoring only: no window, no buffer
            return self._restore_only(text)
        self._buf += text
        # Checked in steps, not per delta: a window check costs ~0.1 ms.
        if self._received - self._released - self._hold >= self._step:
            return self._release(final=False)
        return None

    def _restore_only(self, text: str) -> TextDelta | None:
        """A delta with its placeholders restored (a part of one may wait for the next);
        logprobs go with the next text that goes out."""
        out = self._text.feed(text) if self._text is not None else text
        if not out:
            return None
        if self._marks is not None:
            self._marks.sent(out)
        logprobs = self._released_logprobs(self._received - self._released, masked=False)
        return TextDelta(out, logprobs=logprobs)

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

    def _held_out(self, *, ended: bool = True) -> list[StreamEvent]:
        """Everything held back, checked and restored: before any event that is not a delta
        (the side events that waited for the text last). Not `ended` (at the finish): what
        may still become a placeholder is kept for the text after it, if any."""
        out: list[StreamEvent] = list(self._release_thinking())
        text = self._release(final=True, ended=ended)
        if text is not None:
            out.append(text)
        out.extend(self._release_args())
        for index, restorer in self._args.items():
            rest = restorer.flush()
            if rest:
                out.append(ToolCallDelta(index, rest))
        out.extend(self._side_out(final=True))
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

    def _release(self, *, final: bool, ended: bool = True) -> TextDelta | None:
        """Check the new text, then the text that may go now (restored), or None."""
        plan = self._plan
        released, received = self._released, self._received
        cut = received if final else max(released, received - self._hold)
        spans: list[Span] = []
        if self._hold:
            found = self._rescan() if self._scan else []
            self._check_new(found)
            if plan.cfg.pii.output != "off":
                spans = [s for s in self._spans if s.end > released]
                for s in spans:
                    if s.start < cut < s.end:
                        cut = max(released, s.start)  # never send half of a value
                spans = [
                    s if s.start >= released else Span(released, s.end, s.entity)
                    for s in spans
                    if s.start < cut
                ]
                self._pii_out.update(s.entity for s in spans)
        if self._scan and not final:
            # A PEM key is only recognized whole (its END line): from an open BEGIN on
            # (to block it, or to mask it whole),
            # nothing goes out until the END arrives or the block is too long to be a key.
            at = self._open_pem()
            if at != -1:
                cut = min(cut, max(released, at))
        base = self._base
        if plan.cfg.output.html == "sanitize" and not final:
            # An element still open at the cut waits for its end: each piece is sanitized
            # alone, and half a tag would be escaped, half a <script> let through as text.
            held = self._buf[released - base :]
            cut = released + html_safe_cut(held, cut - released, HTML_HOLD_CHARS)
        if cut == released and not final:
            return None
        seg = self._buf[released - base : cut - base]
        masked = bool(spans) and plan.cfg.pii.output == "mask"
        logprobs = self._released_logprobs(cut - released, masked=masked)
        if masked:
            seg = replace_spans(seg, spans, offset=released)
        self._trim()
        if self._text is not None:
            seg = self._text.feed(seg) + (self._text.flush() if final and ended else "")
        if plan.cfg.output.html == "sanitize" and seg:
            seg = sanitize_html(seg)
        if not seg:
            return None
        if self._marks is not None:
            self._marks.sent(seg)
        return TextDelta(seg, logprobs=logprobs)

    def _rescan(self) -> list[Span]:
        """Scan the text that came since the last scan, and enough before it that no value
        is missed or cut short at the seam; returns the spans this scan found.

        A value the last scan found reaching into the seam is scanned again whole (it may
        go on). One the last scan could not see whole yet is shorter than `OVERLAP_CHARS`
        — every shape is, but an e-mail address with a long domain and a private key: the
        scan starts before the last `@` or BEGIN line before the seam that no value took.
        """
        base, buf = self._base, self._buf
        at = self._scanned - OVERLAP_CHARS
        keep = self._spans
        while keep and keep[-1].end > at:
            at = min(at, keep[-1].start)
            keep.pop()
        local = max(0, at - base)
        done = keep[-1].end - base if keep and keep[-1].end > base else 0
        # An address across the seam has no other `@` between its own and the seam, nor a
        # key another BEGIN line: the last one before the seam is the only one to look at
        # (or, for an address, the first `@` just after it, its local part before it).
        lo = max(done, local - EMAIL_MAX_CHARS)
        for sign in AT_SIGNS:  # `@` and what folds to it (`pii.fold`)
            mail = buf.rfind(sign, lo, local)
            if mail == -1:
                mail = buf.find(sign, local, local + LOCAL_PART)
            if mail != -1:
                at = min(at, base + mail - LOCAL_PART)
        lo = max(done, local - PEM_HOLD_CHARS)
        begin = buf.rfind(PEM_BEGIN, lo, local + len(PEM_BEGIN) - 1)
        if begin != -1:
            at = min(at, base + begin)
        while keep and keep[-1].end > at:  # a value the anchor falls in is scanned whole
            at = min(at, keep[-1].start)
            keep.pop()
        at = max(at, base)
        found = find(buf[at - base :])
        if at:
            found = [Span(s.start + at, s.end + at, s.entity) for s in found]
        keep.extend(found)
        self._scanned = self._received
        return found

    def _open_pem(self) -> int:
        """Where an unfinished private key begins (answer position), or -1."""
        lo = max(self._base, self._released - CONTEXT_CHARS)
        at = self._buf.rfind(PEM_BEGIN, lo - self._base)
        if at == -1 or PEM_END.search(self._buf, at) is not None:
            return -1
        if len(self._buf) - at > PEM_HOLD_CHARS:
            return -1
        return self._base + at

    def _trim(self) -> None:
        """Drop the text (and spans) no later check looks back at: the buffer keeps at most
        `LOOKBACK_CHARS` + `TRIM_CHARS` of sent text."""
        released = self._released
        keep_from = min(released - CONTEXT_CHARS - OVERLAP_CHARS, self._leak_from)
        keep_from = max(keep_from, released - LOOKBACK_CHARS)
        if keep_from - self._base > TRIM_CHARS:
            self._buf = self._buf[keep_from - self._base :]
            self._base = keep_from
            spans = self._spans
            drop = 0
            while drop < len(spans) and spans[drop].end <= keep_from:
                drop += 1
            if drop:
                del spans[:drop]

    def _released_logprobs(self, cut: int, masked: bool) -> list[dict[str, Any]] | None:
        """The logprobs of the deltas now wholly released; none where a value was masked
        (their tokens spell it)."""
        self._released += cut
        out: list[dict[str, Any]] = []
        while self._logprobs and self._logprobs[0][0] <= self._released:
            out.extend(self._logprobs.pop(0)[1])
        return None if masked or not out else out

    def _check_new(self, found: list[Span]) -> None:
        """The output checks on what the last scan found, and the leak check on the words
        that came since the last check (with the `leak_words - 1` before them)."""
        if self._leak is not None and "system_prompt_leak" not in self._flagged:
            lo = max(self._leak_from, self._base)
            leaked, nxt = self._leak.leaks_since(self._buf, lo - self._base)
            self._leak_from = self._base + nxt
            if leaked:
                self._flag_leak()
        self._check_secret(found)

    def _check(self, text: str, found: list[Span]) -> None:
        """The output checks on a whole text (thinking, a tool call's arguments)."""
        if (
            self._leak is not None
            and "system_prompt_leak" not in self._flagged
            and self._leak.leaks(text)
        ):
            self._flag_leak()
        self._check_secret(found)

    def _check_secret(self, found: list[Span]) -> None:
        out = self._plan.cfg.output
        if out.secrets == "off" or "output_secrets" in self._flagged:
            return
        if any(s.entity == "SECRET" for s in found):
            self._flagged.add("output_secrets")
            hit("output_secrets", out.secrets, "secret", self._verdicts)

    def _flag_leak(self) -> None:
        self._flagged.add("system_prompt_leak")
        hit("system_prompt_leak", self._plan.cfg.output.system_prompt_leak, "leak", self._verdicts)

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
