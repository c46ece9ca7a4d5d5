"""The guard stage: runs a model's guard set on the request and on the answer.

Placed right after auth (`sluice.stages.build`): a blocked request costs nothing further
(no rate-limit slot, no cache lookup), and every later stage — the caches included — sees
the masked request, so nothing downstream ever holds the caller's personal data.

Input phase, in this order:
1. input limits (sizes → 413, counts and content types → 400);
2. prompt injection, on the caller's texts by source (user turns, tool results, documents;
   the system prompt only when configured), before masking so the detector sees real text;
3. PII: flag, block (400 `pii_detected`) or mask (the request is rewritten with
   placeholders; `ctx.rewrite` logs it);
4. custom guards and webhooks, shown the masked request.

Output phase: secrets and system-prompt leaks in the answer as the model wrote it, PII the
answer holds (mask → `[email]`), then the caller's own values restored, then HTML
sanitizing. A stream is checked on a rolling window: at most `output.window_tokens` (4
characters each) of text is held back, and only while an output check is on; restoring alone
holds at most one placeholder's length.

Each verdict goes to `ctx.response_headers["x-sluice-guard"]` (`name=outcome[:rule]`, comma
separated, at most `MAX_VERDICTS`), which the call record keeps, and to the Prometheus
counter `sluice_guard_verdicts{guard, verdict}`. A block raises before the header is lost:
the error response carries it too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib
import json
import re
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from sluice.guardrails.base import (
    Guard,
    GuardBlockedError,
    GuardCall,
    InjectionDetectorLike,
    InjectionResult,
    InputTooLargeError,
    Verdict,
)
from sluice.guardrails.checks import (
    LeakDetector,
    check_limits,
    has_secret,
    html_safe_cut,
    request_texts,
    sanitize_html,
    text_bytes,
)
from sluice.guardrails.config import GuardrailsConfig, GuardSet
from sluice.guardrails.custom import GuardLoadError, WebhookGuard, load_custom
from sluice.guardrails.mask import Masker, StreamRestorer
from sluice.guardrails.pii import Span, find, replace_spans
from sluice.pipeline.context import CURRENT_CALL, CallContext, Handler, Result
from sluice.types import (
    ChatRequest,
    ChatResponse,
    EventStream,
    Finish,
    Flush,
    Part,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolCallDelta,
    ToolCallPart,
    ToolResultPart,
)

HEADER = "x-sluice-guard"
MAX_VERDICTS = 16
CHARS_PER_TOKEN = 4
SEEN_TEXTS = 65_536  # injection verdicts remembered by text digest (~100 bytes each)
# A request with more text than this is scanned for PII in a worker thread: hostile text
# costs the detector up to ~8 s per MB (BENCHMARKS.md), which must not stall the event loop.
OFFLOAD_CHARS = 32_768
# New text up to this size gets the injection rules inline (`check_async`); more goes to a
# worker thread (the rules cost ~1 ms CPU per 2 KB, BENCHMARKS.md).
INLINE_CHARS = 4_096
CONTEXT_CHARS = 128  # sent text kept for checks across the cut (a leak's first words)
CHECK_STEP_CHARS = 64  # a stream's window is checked each time this much text came
PEM_BEGIN = "-----BEGIN"
PEM_END = re.compile(r"-----END [A-Z0-9 ]{1,64}-----")  # a whole END line
PEM_HOLD_CHARS = 16_384 + 256  # the PEM shape's longest body (`pii.PATTERN`) and its lines
HTML_HOLD_CHARS = 4096  # the longest open element a stream holds back to sanitize whole

Count = Callable[[str, str], None]  # (guard, outcome) → the metrics counter
Ask = Callable[[ChatRequest], Awaitable[ChatResponse]]


def load_injection_detector() -> InjectionDetectorLike:
    """`sluice.guardrails.injection.InjectionDetector()`, imported (and its classifier
    loaded) when the gateway starts with injection detection on in some guard set."""
    try:
        module = importlib.import_module("sluice.guardrails.injection")
        detector: InjectionDetectorLike = module.InjectionDetector()
    except (ImportError, AttributeError) as err:
        raise GuardLoadError(
            f"guardrails.injection is on, but the detector is not available: {err}"
        ) from err
    load = getattr(detector, "load", None)
    if callable(load):  # its classifier now, at start, not on the first request
        load()
    return detector


@dataclasses.dataclass(slots=True)
class _Plan:
    """A guard set, with its custom guards built."""

    cfg: GuardSet
    guards: list[tuple[Guard, str, tuple[str, ...]]]  # guard, mode, phases
    fail_closed: frozenset[str]  # names of webhooks that fail closed

    @property
    def holds_output(self) -> bool:
        out = self.cfg.output
        return (
            out.secrets != "off" or out.system_prompt_leak != "off" or self.cfg.pii.output != "off"
        )


def _plan(cfg: GuardSet) -> _Plan:
    guards: list[tuple[Guard, str, tuple[str, ...]]] = []
    for custom in cfg.custom:
        if custom.mode != "off":
            guards.append((load_custom(custom), custom.mode, tuple(custom.phases)))
    closed: set[str] = set()
    for hook in cfg.webhooks:
        if hook.mode != "off":
            guards.append((WebhookGuard(hook), hook.mode, tuple(hook.phases)))
            if hook.fail == "closed":
                closed.add(hook.name)
    return _Plan(cfg, guards, frozenset(closed))


class _Verdicts:
    """One call's verdicts: the header, and the counter."""

    __slots__ = ("_count", "_ctx", "items")

    def __init__(self, ctx: CallContext, count: Count | None) -> None:
        self._ctx = ctx
        self._count = count
        self.items: list[Verdict] = []

    def add(self, verdict: Verdict) -> None:
        if self._count is not None:
            self._count(verdict.guard, verdict.outcome)
        if len(self.items) < MAX_VERDICTS:
            self.items.append(verdict)
        self._ctx.response_headers[HEADER] = ", ".join(v.label for v in self.items)


class GuardStage:
    """Runs each call's guard set (by the public model or route it asked for)."""

    def __init__(
        self,
        config: GuardrailsConfig,
        *,
        ask: Ask | None = None,
        count: Count | None = None,
        injection: InjectionDetectorLike | None = None,
    ) -> None:
        self._default = _plan(config)
        self._plans = {name: _plan(s) for name, s in config.models.items()}
        self._ask = ask
        self._count = count
        wants_injection = config.injection.mode != "off" or any(
            s.injection.mode != "off" for s in config.models.values()
        )
        self._injection = injection
        self._seen: OrderedDict[bytes, InjectionResult] = OrderedDict()
        if wants_injection and injection is None:
            self._injection = load_injection_detector()

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        plan = self._plans.get(ctx.request.model, self._default)
        if not plan.cfg.active:
            return await nxt(ctx)
        verdicts = _Verdicts(ctx, self._count)
        token = CURRENT_CALL.set(ctx)  # a guard's model call is charged to this call
        try:
            masker = await self._input(ctx, plan, verdicts)
        finally:
            CURRENT_CALL.reset(token)
        system = "\n".join(p.text for p in ctx.request.system)
        out = plan.cfg.output
        leak = (
            LeakDetector(system, out.leak_words)
            if out.system_prompt_leak != "off" and system
            else None
        )
        result = await nxt(ctx)
        if isinstance(result, ChatResponse):
            return await self._output(ctx, plan, verdicts, masker, leak, result)
        return _GuardedStream(self, ctx, plan, verdicts, masker, leak, result)

    # --- input ---------------------------------------------------------------------------

    async def _input(self, ctx: CallContext, plan: _Plan, verdicts: _Verdicts) -> Masker | None:
        cfg = plan.cfg
        req = ctx.request
        if cfg.input_limits.mode != "off":
            hit = check_limits(cfg.input_limits, req)
            if hit is None:
                verdicts.add(Verdict("input_limits"))
            elif cfg.input_limits.mode == "flag":
                verdicts.add(Verdict("input_limits", "flag", rule=hit.rule))
            else:
                verdicts.add(Verdict("input_limits", "block", rule=hit.rule))
                if hit.too_large:
                    raise InputTooLargeError(hit.message, code="input_too_large", rule=hit.rule)
                raise GuardBlockedError(
                    hit.message, code="input_limit_exceeded", guard="input_limits", rule=hit.rule
                )
        if cfg.injection.mode != "off":
            await self._check_injection(plan, req, verdicts)
        masker = None
        pii = cfg.pii
        size = text_bytes(req) if pii.mode != "off" else 0
        if size > pii.max_scan_bytes:
            if pii.mode == "flag":
                verdicts.add(Verdict("pii", "flag", rule="max_scan_bytes"))
            else:
                verdicts.add(Verdict("pii", "block", rule="max_scan_bytes"))
                raise InputTooLargeError(
                    f"the request has {size} bytes of text; personal data is checked in at "
                    f"most {pii.max_scan_bytes}",
                    code="input_too_large",
                    rule="max_scan_bytes",
                    guard="pii",
                )
        elif pii.mode != "off":
            entities = frozenset(pii.entities) if pii.entities is not None else None
            big = size > OFFLOAD_CHARS
            if pii.mode == "mask":
                masker = Masker(entities)
                masked = (
                    await asyncio.to_thread(mask_request, req, masker)
                    if big
                    else mask_request(req, masker)
                )
                if len(masker):
                    ctx.rewrite(masked, by="guardrails.pii")
                    verdicts.add(Verdict("pii", "mask", rule="+".join(masker.entities_found)))
                else:
                    verdicts.add(Verdict("pii"))
                    masker = None
            else:
                kinds = (
                    await asyncio.to_thread(_kinds, req, entities) if big else _kinds(req, entities)
                )
                if not kinds:
                    verdicts.add(Verdict("pii"))
                elif pii.mode == "flag":
                    verdicts.add(Verdict("pii", "flag", rule="+".join(kinds)))
                else:
                    verdicts.add(Verdict("pii", "block", rule="+".join(kinds)))
                    raise GuardBlockedError(
                        f"the request contains personal data or secrets ({', '.join(kinds)}); "
                        "remove them or ask for masking",
                        code="pii_detected",
                        guard="pii",
                        rule="+".join(kinds),
                    )
        call = GuardCall(
            request=ctx.request,
            tenant=ctx.identity.tenant,
            model=req.model,
            system_text="\n".join(p.text for p in ctx.request.system),
            helper_call=self._ask,
        )
        await self._run_guards(plan, call, "input", verdicts)
        return masker

    async def _check_injection(self, plan: _Plan, req: ChatRequest, verdicts: _Verdicts) -> None:
        detector = self._injection
        assert detector is not None  # loaded when any set switches it on
        cfg = plan.cfg.injection
        sources = set(cfg.sources)
        acheck = getattr(detector, "acheck", None) if cfg.model_check else None
        # `check_async` asks the detector's own model check, if it has one: only without.
        check_async = (
            getattr(detector, "check_async", None)
            if getattr(detector, "model_check", None) is None
            else None
        )
        items = [
            (text, source, _digest(source, text))
            for text, source in request_texts(req, include_system="system" in sources)
            if source in sources and text
        ]
        # A conversation sends its history again each turn: verdicts of texts already seen
        # are remembered by digest (never the text), and only new texts are checked — in a
        # worker thread, as the classifier's embedding costs milliseconds of CPU.
        cache = self._seen
        results: dict[bytes, InjectionResult] = {}
        todo: list[tuple[str, str, bytes]] = []
        for item in items:
            hit = cache.get(item[2])
            if hit is not None:
                cache.move_to_end(item[2])
                results[item[2]] = hit
            else:
                todo.append(item)
        if todo and acheck is not None:
            for text, source, key in todo:
                results[key] = await acheck(text, source=source, ask=self._ask, model=cfg.model)
        elif todo and check_async is not None and sum(len(t) for t, _, _ in todo) <= INLINE_CHARS:
            # Short new text: the rules inline (~0.1-1 ms CPU), the embedding (when the gate
            # sends the text to the classifier) on the embedder's thread. A worker-thread hop
            # for the rules alone cost ~1-3 ms p50 on a loaded machine (BENCHMARKS.md).
            for text, source, key in todo:
                results[key] = await check_async(text, source=source)
        elif todo:
            checked = await asyncio.to_thread(
                lambda: [detector.check(text, source=source) for text, source, _ in todo]
            )
            results.update((key, found) for (_, _, key), found in zip(todo, checked, strict=True))
        for _, _, key in todo:
            cache[key] = results[key]
        while len(cache) > SEEN_TEXTS:
            cache.popitem(last=False)
        worst: InjectionResult | None = None
        where = "user"
        for _, source, key in items:
            found = results[key]
            if found.flagged:
                worst = found
                where = source
                break
            if worst is None or found.score > worst.score:
                worst = found
        if worst is None or not worst.flagged:
            verdicts.add(Verdict("prompt_injection", score=worst.score if worst else None))
            return
        rule = worst.rule or worst.layer
        if cfg.mode == "flag":
            verdicts.add(Verdict("prompt_injection", "flag", rule=rule, score=worst.score))
            return
        verdicts.add(Verdict("prompt_injection", "block", rule=rule, score=worst.score))
        raise GuardBlockedError(
            f"prompt injection detected in {where} text (rule: {rule})",
            code="prompt_injection_detected",
            guard="prompt_injection",
            rule=rule,
        )

    async def _run_guards(
        self, plan: _Plan, call: GuardCall, phase: str, verdicts: _Verdicts
    ) -> None:
        for guard, mode, phases in plan.guards:
            if phase not in phases:
                continue
            call.phase = "output" if phase == "output" else "input"
            try:
                verdict = await guard.check(call)
            except Exception as err:  # a custom guard's bug: its own `error` verdict
                verdict = Verdict(guard.name, "error", rule=type(err).__name__)
            outcome = verdict.outcome
            if outcome == "error":
                closed = guard.name in plan.fail_closed
                verdicts.add(verdict)
                if closed and mode == "block":
                    raise GuardBlockedError(
                        f"guard {guard.name} could not check this call and fails closed",
                        code="guard_unavailable",
                        guard=guard.name,
                        rule=verdict.rule,
                    )
                continue
            if outcome in ("pass", "mask"):
                verdicts.add(verdict)
                continue
            if mode == "flag":
                verdicts.add(dataclasses.replace(verdict, outcome="flag"))
                continue
            verdicts.add(dataclasses.replace(verdict, outcome="block"))
            raise GuardBlockedError(
                verdict.message
                or f"blocked by guard {verdict.guard}"
                + (f" (rule: {verdict.rule})" if verdict.rule else ""),
                code="guard_blocked",
                guard=verdict.guard,
                rule=verdict.rule,
            )

    # --- output --------------------------------------------------------------------------

    def _judge(
        self, plan: _Plan, text: str, leak: LeakDetector | None, verdicts: _Verdicts
    ) -> None:
        """Secrets and leaks in the model's own text (before the caller's values are back)."""
        out = plan.cfg.output
        if out.secrets != "off" and has_secret(text):
            self._hit("output_secrets", out.secrets, "secret", verdicts)
        if leak is not None and leak.leaks(text):
            self._hit("system_prompt_leak", out.system_prompt_leak, "leak", verdicts)

    @staticmethod
    def _hit(guard: str, mode: str, rule: str, verdicts: _Verdicts) -> None:
        if mode == "flag":
            verdicts.add(Verdict(guard, "flag", rule=rule))
            return
        verdicts.add(Verdict(guard, "block", rule=rule))
        what = "a secret" if guard == "output_secrets" else "the system prompt"
        raise GuardBlockedError(
            f"the answer was withheld: it contained {what}",
            code="output_blocked",
            guard=guard,
            rule=rule,
        )

    async def _output(
        self,
        ctx: CallContext,
        plan: _Plan,
        verdicts: _Verdicts,
        masker: Masker | None,
        leak: LeakDetector | None,
        resp: ChatResponse,
    ) -> ChatResponse:
        """The answer as the caller gets it: a copy, so what the caches, idempotency and
        the record hold (the same object, from settle) keeps the placeholders."""
        text = "".join(p.text for p in resp.parts if isinstance(p, TextPart))
        # Tool-call arguments reach the caller too: a key or the system prompt written into
        # them is as much a leak as in the text.
        args = "\n".join(p.arguments for p in resp.parts if isinstance(p, ToolCallPart))
        # ... and so does the model's thinking (Anthropic returns it).
        thinking = "\n".join(p.thinking for p in resp.parts if isinstance(p, ThinkingPart))
        extra = "\n".join(x for x in (args, thinking) if x)
        self._judge(plan, f"{text}\n{extra}" if extra else text, leak, verdicts)
        if any("output" in phases for _, _, phases in plan.guards):
            call = GuardCall(
                request=ctx.request,
                tenant=ctx.identity.tenant,
                model=ctx.request.model,
                phase="output",
                answer=text,
                helper_call=self._ask,
            )
            token = CURRENT_CALL.set(ctx)
            try:
                await self._run_guards(plan, call, "output", verdicts)
            finally:
                CURRENT_CALL.reset(token)
        cfg = plan.cfg
        masked_out: set[str] = set()
        parts: list[Part] = []
        for part in resp.parts:
            if isinstance(part, TextPart):
                value = part.text
                if cfg.pii.output != "off":
                    spans = find(value)
                    masked_out.update(s.entity for s in spans)
                    if cfg.pii.output == "mask":
                        value = replace_spans(value, spans)
                if masker is not None:
                    value = masker.restore(value, json_string=json_answer(ctx.request))
                if cfg.output.html == "sanitize":
                    value = sanitize_html(value)
                part = dataclasses.replace(part, text=value)
            elif isinstance(part, ToolCallPart) and masker is not None:
                arguments = masker.restore(part.arguments, json_string=True)
                part = dataclasses.replace(part, arguments=arguments)
            parts.append(part)
        detail = resp.logprobs_detail
        if cfg.pii.output != "off":
            rule = "+".join(sorted(masked_out)) or None
            outcome = "pass" if not masked_out else cfg.pii.output
            verdicts.add(Verdict("pii_output", outcome, rule=rule))
            if masked_out and cfg.pii.output == "mask":
                detail = None  # its tokens spell the values the text no longer shows
        return dataclasses.replace(resp, parts=parts, logprobs_detail=detail)


class _GuardedStream:
    """The answer's events with output checks on a rolling window and placeholders
    restored; closes the stream under it when closed."""

    def __init__(
        self,
        stage: GuardStage,
        ctx: CallContext,
        plan: _Plan,
        verdicts: _Verdicts,
        masker: Masker | None,
        leak: LeakDetector | None,
        inner: EventStream,
    ) -> None:
        self._stage, self._ctx, self._plan = stage, ctx, plan
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
            self._stage._hit("output_secrets", out.secrets, "secret", self._verdicts)
        if (
            self._leak is not None
            and "system_prompt_leak" not in self._flagged
            and self._leak.leaks(window)
        ):
            self._flagged.add("system_prompt_leak")
            self._stage._hit("system_prompt_leak", out.system_prompt_leak, "leak", self._verdicts)

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
                helper_call=self._stage._ask,
            )
            token = CURRENT_CALL.set(ctx)
            try:
                await self._stage._run_guards(self._plan, call, "output", self._verdicts)
            finally:
                CURRENT_CALL.reset(token)


def json_answer(req: ChatRequest) -> bool:
    """Whether the answer text is JSON (`json_object` / `json_schema`): a placeholder can
    only stand inside a JSON string there, so its value goes back escaped — a key's
    newlines or a password's backslash restored raw would break the JSON."""
    fmt = req.response_format
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def _digest(source: str, text: str) -> bytes:
    return hashlib.blake2b(f"{source}\x00{text}".encode(), digest_size=16).digest()


def _kinds(req: ChatRequest, entities: frozenset[str] | None) -> list[str]:
    """The kinds of personal data and secrets anywhere in the request, sorted."""
    return sorted(
        {
            s.entity
            for text, _ in request_texts(req, include_system=True)
            for s in find(text, entities)
        }
    )


def mask_request(req: ChatRequest, masker: Masker) -> ChatRequest:
    """A copy of `req` with every text (system, turns, tool results, earlier tool-call
    arguments) masked; the caller's request object is left as it was."""
    for text, _ in request_texts(req, include_system=True):
        masker.reserve(text)
    # The caller's own text in places `request_texts` leaves out (earlier tool calls, tool
    # definitions, the response schema): the model can echo those too, and a `<EMAIL_1>`
    # written there must never be handed out for another value.
    for msg in req.messages:
        for item in msg.parts:
            if isinstance(item, ToolCallPart):
                masker.reserve(item.arguments)
    for tool in req.tools or ():
        masker.reserve(
            f"{tool.name} {tool.description or ''} {json.dumps(tool.parameters, default=str)}"
        )
    for extra in (req.response_format, req.native_tools):
        if extra:
            masker.reserve(json.dumps(extra, default=str))

    def text_part(part: TextPart) -> TextPart:
        masked = masker.mask(part.text)
        return part if masked == part.text else dataclasses.replace(part, text=masked)

    def any_part(part: Part) -> Part:
        if isinstance(part, TextPart):
            return text_part(part)
        if isinstance(part, ToolResultPart):
            content = [text_part(p) if isinstance(p, TextPart) else p for p in part.content]
            return dataclasses.replace(part, content=content)
        if isinstance(part, ToolCallPart):
            masked = masker.mask(part.arguments)
            return part if masked == part.arguments else dataclasses.replace(part, arguments=masked)
        return part

    messages = [
        dataclasses.replace(msg, parts=[any_part(p) for p in msg.parts]) for msg in req.messages
    ]
    system = [text_part(p) for p in req.system]
    return dataclasses.replace(req, messages=messages, system=system)
