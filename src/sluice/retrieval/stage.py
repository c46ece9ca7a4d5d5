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
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace

from sluice.collect import WatchedStream
from sluice.errors import InvalidRequestError
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.retrieval.grounding import (
    CitationCheck,
    Context,
    build_context,
    check_citations,
    file_citations,
    parse_request,
)
from sluice.retrieval.service import RetrievalService
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


class GroundingStage:
    def __init__(
        self,
        service: Callable[[], RetrievalService | None],
        window_of: Callable[[str], int | None] = lambda model: None,
    ) -> None:
        self._service = service
        self._window_of = window_of  # the model's context window in tokens; None: unknown

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
        context = build_context(outcome.results, cfg.context_max_chunks, budget)
        if context.sources:
            ctx.rewrite(replace(req, system=[*req.system, TextPart(context.text)]), "retrieval")
        ctx.retrieval_tokens = context.tokens if context.sources else 0
        ctx.retrieval_sources = len(context.sources)
        headers = ctx.response_headers
        headers["x-sluice-retrieval-sources"] = _sources_header(context)
        headers["x-sluice-retrieval-tokens"] = str(context.tokens if context.sources else 0)
        headers["x-sluice-retrieval-reranked"] = (
            "skipped" if outcome.rerank_skipped else ("true" if outcome.reranked else "false")
        )
        result = await nxt(ctx)
        if isinstance(result, ChatResponse):
            self._settle(ctx, result, context, ask.source == "file_search")
            return result

        async def on_end(resp: ChatResponse, completed: bool) -> None:
            check = check_citations(_answer(resp), context.sources)
            ctx.grounded = grounded_label(check, len(context.sources), completed)
            if check.unknown:
                log.warning(
                    "ungrounded citations %s in %s", check.unknown[:10], ctx.request.meta.request_id
                )

        return WatchedStream(result, on_end)

    def _settle(
        self, ctx: CallContext, resp: ChatResponse, context: Context, annotate: bool
    ) -> None:
        answer = _answer(resp)
        check = check_citations(answer, context.sources)
        ctx.grounded = grounded_label(check, len(context.sources))
        ctx.response_headers["x-sluice-citations"] = ",".join(str(n) for n in check.cited)
        ctx.response_headers["x-sluice-grounded"] = "true" if check.grounded else "false"
        if check.unknown:
            log.warning(
                "ungrounded citations %s in %s", check.unknown[:10], ctx.request.meta.request_id
            )
        if annotate:
            for part in resp.parts:
                if isinstance(part, TextPart):
                    cites = file_citations(part.text, context.sources)
                    if cites:
                        part.citations = cites
