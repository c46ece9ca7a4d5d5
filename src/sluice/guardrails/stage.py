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
sanitizing. A stream is checked on a rolling window (`sluice.guardrails.stream`).

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
from collections import OrderedDict
from collections.abc import Sequence

from sluice.guardrails.base import (
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
    request_texts,
    sanitize_html,
    text_bytes,
)
from sluice.guardrails.citations import moved_citations, restored_citation
from sluice.guardrails.config import GuardrailsConfig
from sluice.guardrails.custom import GuardLoadError
from sluice.guardrails.mask import Masker, json_answer, mask_request
from sluice.guardrails.pii import find, replace_spans
from sluice.guardrails.plan import (
    HEADER,
    MAX_VERDICTS,
    Ask,
    Count,
    Plan,
    Verdicts,
    hit,
    make_plan,
    run_guards,
)
from sluice.guardrails.stream import GuardedStream
from sluice.pipeline.context import CURRENT_CALL, CallContext, Handler, Result
from sluice.types import (
    ChatRequest,
    ChatResponse,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
)

__all__ = ["HEADER", "MAX_VERDICTS", "GuardStage", "load_injection_detector"]

SEEN_TEXTS = 65_536  # injection verdicts remembered by text digest (~100 bytes each)
# A request with more text than this is scanned for PII in a worker thread: hostile text
# costs the detector up to ~8 s per MB (BENCHMARKS.md), which must not stall the event loop.
OFFLOAD_CHARS = 32_768
# New text up to this size gets the injection rules inline (`check_async`); more goes to a
# worker thread (the rules cost ~1 ms CPU per 2 KB, BENCHMARKS.md).
INLINE_CHARS = 4_096


def load_injection_detector(classifier: str = "sequence") -> InjectionDetectorLike:
    """`sluice.guardrails.injection.InjectionDetector(kind=classifier)`, imported (and its
    classifier loaded) when the gateway starts with injection detection on in some guard
    set (`guardrails.injection_classifier`)."""
    try:
        module = importlib.import_module("sluice.guardrails.injection")
        detector: InjectionDetectorLike = module.InjectionDetector(kind=classifier)
    except (ImportError, AttributeError) as err:
        raise GuardLoadError(
            f"guardrails.injection is on, but the detector is not available: {err}"
        ) from err
    load = getattr(detector, "load", None)
    if callable(load):  # its classifier now, at start, not on the first request
        load()
    return detector


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
        self._default = make_plan(config)
        self._plans = {name: make_plan(s) for name, s in config.models.items()}
        self._ask = ask
        self._count = count
        wants_injection = config.injection.mode != "off" or any(
            s.injection.mode != "off" for s in config.models.values()
        )
        self._injection = injection
        self._seen: OrderedDict[bytes, InjectionResult] = OrderedDict()
        if wants_injection and injection is None:
            self._injection = load_injection_detector(config.injection_classifier)

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        plan = self._plans.get(ctx.request.model, self._default)
        if not plan.cfg.active:
            return await nxt(ctx)
        verdicts = Verdicts(ctx, self._count)
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
        if masker is not None and not len(masker):
            masker = None  # nothing masked: not the caller's text, nor text added later
        if isinstance(result, ChatResponse):
            return await self._output(ctx, plan, verdicts, masker, leak, result)
        if not GuardedStream.needed(plan, masker):
            return result
        return GuardedStream(self._ask, ctx, plan, verdicts, masker, leak, result)

    # --- input ---------------------------------------------------------------------------

    async def _input(self, ctx: CallContext, plan: Plan, verdicts: Verdicts) -> Masker | None:
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
                # Text later stages add to the prompt (retrieved chunks) is masked with the
                # same mapping, so the answer's placeholders restore whatever their origin.
                ctx.mask_text = masker.mask
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
        await run_guards(plan, call, "input", verdicts)
        return masker

    async def _check_injection(self, plan: Plan, req: ChatRequest, verdicts: Verdicts) -> None:
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
        results, todo = _split_seen(items, cache)
        todo, over = _within_budget(todo, cfg.max_scan_bytes)
        if over:  # more new text than one request may make us read: never a silent pass
            _over_budget(cfg.mode, cfg.max_scan_bytes, verdicts)
            checked_keys = {key for _, _, key in todo}
            items = [item for item in items if item[2] in results or item[2] in checked_keys]
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

    # --- output --------------------------------------------------------------------------

    def _judge(self, plan: Plan, text: str, leak: LeakDetector | None, verdicts: Verdicts) -> None:
        """Secrets and leaks in the model's own text (before the caller's values are back)."""
        out = plan.cfg.output
        if out.secrets != "off" and has_secret(text):
            hit("output_secrets", out.secrets, "secret", verdicts)
        if leak is not None and leak.leaks(text):
            hit("system_prompt_leak", out.system_prompt_leak, "leak", verdicts)

    async def _output(
        self,
        ctx: CallContext,
        plan: Plan,
        verdicts: Verdicts,
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
                await run_guards(plan, call, "output", verdicts)
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
                citations = moved_citations(part.text, value, part.citations)
                if masker is not None and citations:
                    citations = [restored_citation(c, masker.restore) for c in citations]
                part = dataclasses.replace(part, text=value, citations=citations)
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


def _split_seen(
    items: Sequence[tuple[str, str, bytes]], cache: OrderedDict[bytes, InjectionResult]
) -> tuple[dict[bytes, InjectionResult], list[tuple[str, str, bytes]]]:
    """Verdicts already known by digest, and the new texts to check (each once)."""
    results: dict[bytes, InjectionResult] = {}
    todo: list[tuple[str, str, bytes]] = []
    queued: set[bytes] = set()
    for item in items:
        hit = cache.get(item[2])
        if hit is not None:
            cache.move_to_end(item[2])
            results[item[2]] = hit
        elif item[2] not in queued:  # the same text twice in one request: checked once
            queued.add(item[2])
            todo.append(item)
    return results, todo


def _over_budget(mode: str, budget: int, verdicts: Verdicts) -> None:
    """More new text than one request may make the injection check read: 413 in block
    mode, a flag otherwise (never a silent pass)."""
    if mode == "block":
        verdicts.add(Verdict("prompt_injection", "block", rule="max_scan_bytes"))
        raise InputTooLargeError(
            f"the request has more than {budget} bytes of new text; "
            f"prompt injection is checked in at most {budget}",
            code="input_too_large",
            rule="max_scan_bytes",
            guard="prompt_injection",
        )
    verdicts.add(Verdict("prompt_injection", "flag", rule="max_scan_bytes"))


def _within_budget(
    todo: list[tuple[str, str, bytes]], budget: int
) -> tuple[list[tuple[str, str, bytes]], bool]:
    """The texts to check within `budget` bytes, newest first (the turn just sent matters
    most), kept in request order; and whether any text was left out."""
    kept: list[tuple[str, str, bytes]] = []
    used = 0
    over = False
    for item in reversed(todo):
        size = len(item[0].encode("utf-8", "surrogatepass"))
        if used + size > budget:
            over = True
            continue
        used += size
        kept.append(item)
    kept.reverse()
    return kept, over


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
