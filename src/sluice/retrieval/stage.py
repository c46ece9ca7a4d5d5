"""`GroundingStage`: retrieval-augmented chat for any front end (see `grounding.py`).

Runs after auth and the guards and before the token policy and the caches, so the context is
part of what they see: the cache keys the grounded prompt, the token policy counts it. The
search and the context are this stage's; the model call is the rest of the pipeline's.
What retrieval added (sources, tokens, grounding) is reported in `x-sluice-retrieval-*`
headers, logged on `sluice.retrieval` (an ungrounded citation at WARNING) and put on the call
record (`retrieval_tokens`, `retrieval_cost_usd`, `retrieval_sources`, `grounded`). A streamed
answer's headers leave before its text exists, so its citation check runs when the stream
ends (or is cut) and reaches the record only.
The context's token budget is `retrieval.context_max_tokens`, cut further to what the model's
context window (when known) leaves after the prompt and `max_tokens`: lowest-ranked chunks are
dropped rather than the grounded request overflowing the window into a 400.

Also, each optional:
- Retrieved chunks are screened for indirect prompt injection before they enter the prompt
  (`screen`, from the guard config; sluice.retrieval.screen): flag, or drop the poisoned chunk.
- A Responses `file_search` stream gets `file_citation` annotations as its `[n]` markers
  complete (sluice.retrieval.streaming); a plain answer gets them on its text.
- The support judge (`retrieval.support_judge`, sluice.retrieval.judge) asks a cheap model
  whether the cited claims are supported; unsupported claims make `grounded`
  `unsupported_claims:N` on the record (and `x-sluice-grounded: false` on a plain answer).
  Streams: it runs when the stream ends, before its last event (at most `timeout_s`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace

from sluice.collect import WatchedStream
from sluice.errors import InvalidRequestError
from sluice.pipeline.context import CURRENT_CALL, CallContext, Handler, Result
from sluice.retrieval.grounding import (
    CitationCheck,
    Context,
    _line,
    build_context,
    check_citations,
    file_citations,
    parse_request,
)
from sluice.retrieval.judge import SupportJudge
from sluice.retrieval.screen import GUARD_HEADER, GUARD_NAME, DocumentScreen
from sluice.retrieval.search import SearchResult
from sluice.retrieval.service import RetrievalService
from sluice.retrieval.streaming import AnnotatedStream
from sluice.tokens import estimate_request_tokens
from sluice.types import ChatResponse, TextPart

log = logging.getLogger("sluice.retrieval")

MAX_HEADER_CHARS = 4000


def _last_user_text(ctx: CallContext) -> str:
    for message in reversed(ctx.request.messages):
        if message.role == "user":
            text = " ".join(p.text for p in message.parts if isinstance(p, TextPart)).strip()
            if text:
                return text
    return ""


def _answer(resp: ChatResponse) -> str:
    return "".join(p.text for p in resp.parts if isinstance(p, TextPart))


def grounded_label(check: CitationCheck, sources: int, completed: bool = True) -> str:
    """The record's bounded `grounded` value for one answer."""
    if sources == 0:
        return "no_sources"
    if check.unknown:
        return f"unsupported:{len(check.unknown)}"
    if not completed:
        return "cut"
    return "ok" if check.cited else "no_citations"


def _sources_header(context: Context) -> str:
    items = [s.to_json() for s in context.sources]
    while items:
        text = json.dumps(items, ensure_ascii=True, separators=(",", ":"))
        if len(text) <= MAX_HEADER_CHARS:
            return text
        items = items[:-1]
    return "[]"


def _ids_header(results: list[SearchResult]) -> str:
    return ",".join(r.chunk.id for r in results)[:MAX_HEADER_CHARS]


def _as_prompted(r: SearchResult) -> str:
    c = r.chunk
    head = _line(c.filename) + (f" — {_line(c.heading)}" if c.heading else "")
    return f"{head}\n{r.text}"


class GroundingStage:
    def __init__(
        self,
        service: Callable[[], RetrievalService | None],
        window_of: Callable[[str], int | None] = lambda model: None,
        *,
        screen: DocumentScreen | None = None,
        judge: SupportJudge | None = None,
        count: Callable[[str, str], None] | None = None,
    ) -> None:
        self._service = service
        self._window_of = window_of  # the model's context window in tokens; None: unknown
        self._screen = screen  # indirect injection in retrieved chunks (None: not checked)
        self._judge = judge  # the optional support judge
        self._count = count  # guard verdict counter (guard, outcome)

    async def _screened(self, ctx: CallContext, results: list[SearchResult]) -> list[SearchResult]:
        """The results that may enter the prompt: all (flag: the flagged ones named in the
        headers), or the clean ones (block). Model checks are charged to this call."""
        screen = self._screen
        mode = screen.mode(ctx.request.model) if screen is not None else "off"
        if screen is None or mode == "off" or not results:
            return results
        token = CURRENT_CALL.set(ctx)
        try:
            # As the chunk enters the prompt: its filename and heading are in the source's
            # header line, so a poisoned name under a clean body is a poisoned source too.
            verdicts = await screen.check(ctx.request.model, [_as_prompted(r) for r in results])
        finally:
            CURRENT_CALL.reset(token)
        flagged = [(r, v) for r, v in zip(results, verdicts, strict=True) if v.flagged]
        headers = ctx.response_headers
        if not flagged:
            headers[GUARD_HEADER] = f"{GUARD_NAME}=pass"
            if self._count is not None:
                self._count(GUARD_NAME, "pass")
            return results
        worst = max(flagged, key=lambda rv: rv[1].score)[1]
        rule = "".join(c if c.isalnum() or c in "_-." else "_" for c in (worst.rule or "detector"))
        outcome = "block" if mode == "block" else "flag"
        headers[GUARD_HEADER] = f"{GUARD_NAME}={outcome}:{rule[:64]}"
        if self._count is not None:
            self._count(GUARD_NAME, outcome)
        bad = [r for r, _ in flagged]
        log.warning(
            "indirect prompt injection (%s) in %d retrieved chunk(s) %s of %s: %s",
            rule[:64],
            len(bad),
            [r.chunk.id for r in bad][:10],
            ctx.request.meta.request_id,
            "dropped" if outcome == "block" else "flagged",
        )
        if outcome == "flag":
            headers["x-sluice-retrieval-flagged"] = _ids_header(bad)
            return results
        headers["x-sluice-retrieval-dropped"] = _ids_header(bad)
        dropped = {id(r) for r in bad}
        return [r for r in results if id(r) not in dropped]

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        req = ctx.request
        ask = parse_request(req.meta.headers, req.meta.metadata)
        if ask is None:
            return await nxt(ctx)
        service = self._service()
        if service is None:
            raise InvalidRequestError("retrieval is not enabled on this gateway", param="tools")
        query = _last_user_text(ctx)
        if not query:
            raise InvalidRequestError("retrieval needs a user message to search with")
        cfg = service.config
        outcome = await service.search(
            ctx.identity.tenant,
            list(ask.store_ids),
            query[-4000:],
            ask.max_results or min(50, cfg.context_max_chunks * 2),
            ask.filters,
            ask.ranking_options,
        )
        budget = cfg.context_max_tokens
        window = self._window_of(req.model)
        if window is not None:  # what the window leaves after the prompt and the answer
            room = window - estimate_request_tokens(req) - (req.max_tokens or 0) - 16
            budget = max(0, min(budget, room))
        results = await self._screened(ctx, outcome.results)
        context = build_context(results, cfg.context_max_chunks, budget)
        if context.sources:
            text = context.text if ctx.mask_text is None else ctx.mask_text(context.text)
            ctx.rewrite(replace(req, system=[*req.system, TextPart(text)]), "retrieval")
        ctx.retrieval_tokens = context.tokens if context.sources else 0
        ctx.retrieval_sources = len(context.sources)
        headers = ctx.response_headers
        headers["x-sluice-retrieval-sources"] = _sources_header(context)
        headers["x-sluice-retrieval-tokens"] = str(context.tokens if context.sources else 0)
        headers["x-sluice-retrieval-reranked"] = (
            "skipped" if outcome.rerank_skipped else ("true" if outcome.reranked else "false")
        )
        annotate = ask.source == "file_search"
        result = await nxt(ctx)
        if isinstance(result, ChatResponse):
            await self._settle(ctx, result, context, annotate)
            return result

        async def on_end(resp: ChatResponse, completed: bool) -> None:
            answer = _answer(resp)
            check = check_citations(answer, context.sources)
            ctx.grounded = grounded_label(check, len(context.sources), completed)
            if check.unknown:
                log.warning(
                    "ungrounded citations %s in %s", check.unknown[:10], ctx.request.meta.request_id
                )
            if completed and ctx.grounded == "ok":
                await self._judged(ctx, answer, context)

        if annotate and req.meta.wire == "openai":  # Responses file_search: file_citation
            result = AnnotatedStream(result, context.sources)
        return WatchedStream(result, on_end)

    async def _judged(self, ctx: CallContext, answer: str, context: Context) -> bool | None:
        """Ask the support judge (if on) about a grounded answer; False when it found a cited
        claim unsupported (and `grounded` says so), None when it gave no verdict."""
        if self._judge is None or ctx.cache_status in ("exact", "semantic", "stale"):
            return None  # a cached answer is served free: it is not judged again
        token = CURRENT_CALL.set(ctx)  # the judge's model call is charged to this call
        try:
            unsupported = await self._judge.unsupported(answer, context.sources)
        finally:
            CURRENT_CALL.reset(token)
        if unsupported is None:
            return None
        if unsupported:
            ctx.grounded = f"unsupported_claims:{len(unsupported)}"
            log.warning(
                "support judge: claims %s unsupported in %s",
                unsupported[:10],
                ctx.request.meta.request_id,
            )
        return not unsupported

    async def _settle(
        self, ctx: CallContext, resp: ChatResponse, context: Context, annotate: bool
    ) -> None:
        answer = _answer(resp)
        check = check_citations(answer, context.sources)
        ctx.grounded = grounded_label(check, len(context.sources))
        ctx.response_headers["x-sluice-citations"] = ",".join(str(n) for n in check.cited)
        if check.unknown:
            log.warning(
                "ungrounded citations %s in %s", check.unknown[:10], ctx.request.meta.request_id
            )
        supported = await self._judged(ctx, answer, context) if ctx.grounded == "ok" else None
        if supported is not None:
            ctx.response_headers["x-sluice-support"] = "ok" if supported else ctx.grounded or ""
        grounded = check.grounded and supported is not False
        ctx.response_headers["x-sluice-grounded"] = "true" if grounded else "false"
        if annotate:
            for part in resp.parts:
                if isinstance(part, TextPart):
                    cites = file_citations(part.text, context.sources)
                    if cites:
                        part.citations = cites
