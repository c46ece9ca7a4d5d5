"""Turn a finished request into its `CallRecord` (and attempt records), then hand them to the
metrics and the buffered sink. Called once per request, after the answer went out."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal

from sluice.config import ObservabilityConfig
from sluice.cost.compute import compute_cost, cost_saved_by_cache
from sluice.cost.prices import Price
from sluice.observe.metrics import Metrics
from sluice.observe.records import CACHE_HITS, CallRecord, prompt_hash
from sluice.observe.redact import preview
from sluice.observe.rows import storable
from sluice.observe.sink import RecordSink
from sluice.observe.spool import Spool
from sluice.observe.store import RecordStore
from sluice.pipeline.context import CallContext
from sluice.types import ChatRequest, ChatResponse, TextPart, ToolResultPart, Usage

log = logging.getLogger("sluice.observe")


class Recorder:
    def __init__(
        self,
        config: ObservabilityConfig,
        price_of: Callable[[str], Price | None],
        price_of_model: Callable[[str], Price | None] = lambda model: None,
    ) -> None:
        self._cfg = config.records
        self._price_of = price_of
        self._price_of_model = price_of_model
        self.metrics = Metrics()
        # Extra consumers of every call record (alert rules); each must be cheap.
        self.observers: list[Callable[[CallRecord], None]] = []
        self.store: RecordStore | None = None
        self.sink = RecordSink(
            None,
            max_buffer=self._cfg.buffer,
            log_records=self._cfg.log_json,
            on_drop=self.metrics.record_dropped,
        )

    async def start(self) -> None:
        if self._cfg.enabled and self._cfg.store_url:
            self.store = await asyncio.to_thread(RecordStore.open, self._cfg.store_url)
            spool_dir = self._cfg.spool_dir
            self.sink = RecordSink(
                self.store,
                max_buffer=self._cfg.buffer,
                log_records=self._cfg.log_json,
                on_drop=self.metrics.record_dropped,
                on_dead_letter=self.metrics.dead_lettered("call_records"),
                spool=Spool(spool_dir) if spool_dir else None,
            )
        await self.sink.start()

    async def close(self) -> None:
        await self.sink.close()
        if self.store is not None:
            self.store.close()

    def finish(
        self,
        ctx: CallContext | None,
        *,
        request_id: str,
        started: float,
        status: int,
        error_type: str | None = None,
        ttft_ms: float | None = None,
        wall_start: float | None = None,
    ) -> None:
        if not self._cfg.enabled:
            return
        latency_ms = (time.perf_counter() - started) * 1000
        ts = wall_start if wall_start is not None else time.time() - latency_ms / 1000
        # Bounded to the table's columns here, whatever the client sent (sluice.observe.rows).
        record = storable(
            self._record(ctx, request_id, ts, latency_ms, status, error_type, ttft_ms)
        )
        self.metrics.observe(record)
        for observer in self.observers:
            observer(record)
        self.sink.emit(record)
        if ctx is not None and len(ctx.attempt_log) > 1:
            for attempt in ctx.attempt_log:
                self.sink.emit(
                    storable(
                        CallRecord(
                            request_id=f"{request_id}:{attempt.deployment}:{attempt.started:.6f}",
                            attempt_of=request_id,
                            kind="attempt",
                            ts=attempt.started,
                            route=ctx.route or ctx.request.model,
                            model_requested=ctx.request.model,
                            deployment=attempt.deployment,
                            input_tokens=attempt.input_tokens,
                            output_tokens=attempt.output_tokens,
                            cost_usd=attempt.cost_usd,
                            latency_ms=attempt.latency_ms,
                            status=attempt.status,
                            error_type=attempt.error_type,
                            stream=ctx.request.stream,
                        )
                    )
                )

    def _record(
        self,
        ctx: CallContext | None,
        request_id: str,
        ts: float,
        latency_ms: float,
        status: int,
        error_type: str | None,
        ttft_ms: float | None,
    ) -> CallRecord:
        if ctx is None:  # the request never decoded: only what failed and how
            return CallRecord(
                request_id=request_id,
                ts=ts,
                latency_ms=latency_ms,
                status=status,
                error_type=error_type,
            )
        req, usage, dep = ctx.request, ctx.usage, ctx.deployment
        meta = req.meta
        resp = ctx.last_response
        saved: Decimal | None = None
        cost = call_cost(ctx)
        hit = ctx.cache_status in CACHE_HITS
        if hit and resp is not None:
            # Answered by Sluice's cache: nothing was spent; what the answer cost the first
            # time was saved (older entries: its usage at the requested model's price).
            saved = ctx.cache_saved_usd
            if saved is None:
                saved = compute_cost(resp.usage, self._price_of_model(req.model))
            cost = Decimal(0)
        elif ctx.attempts == 0:
            cost = Decimal(0)  # no upstream call (an idempotent replay, a degrade answer)
        elif dep is not None and usage.cache_read_tokens:
            saved = cost_saved_by_cache(usage, self._price_of(dep.id))
        system = "\n".join(p.text for p in req.system)
        return CallRecord(
            request_id=request_id,
            parent_request_id=meta.headers.get("x-sluice-parent-request-id")
            or _str(meta.metadata.get("parent_request_id")),
            trace_id=_trace_id(meta.headers.get("traceparent")),
            ts=ts,
            user_id=meta.headers.get("x-sluice-user") or ctx.end_user,
            tenant=ctx.identity.tenant,
            key_id=ctx.identity.key_id,
            feature=meta.feature
            or meta.headers.get("x-sluice-feature")
            or _str(meta.metadata.get("feature")),
            session=meta.session
            or meta.headers.get("x-sluice-session")
            or _str(meta.metadata.get("session_id")),
            route=ctx.route or req.model,
            route_decision=ctx.route_decision,
            model_requested=req.model,
            deployment=dep.id if dep else None,
            provider=dep.provider if dep else None,
            upstream_model=dep.model if dep else None,
            attempts=ctx.attempts,
            fallback_triggered=ctx.fallback,
            stream=req.stream,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cost_usd=cost,
            usage_source=ctx.usage_source,
            cache_status=ctx.cache_status,  # type: ignore[arg-type]
            cache_similarity=ctx.cache_similarity,
            cache_score=ctx.cache_score,
            cache_decision=ctx.cache_decision[:120] if ctx.cache_decision else None,
            cost_saved_usd=saved,
            routing_saved_usd=self._routing_saved(ctx, cost, status),
            latency_ms=latency_ms,
            ttft_ms=ttft_ms,
            finish_reason=resp.finish_reason if resp is not None and status < 400 else None,
            status=status,
            error_type=error_type,
            system_prompt_hash=prompt_hash(system) if system else None,
            input_preview=self._preview(_last_user_text(req)),
            output_preview=self._preview(_answer_text(resp)) if status < 400 else None,
            guards=_guards(ctx.response_headers),
            retrieval_tokens=ctx.retrieval_tokens,
            retrieval_cost_usd=self._retrieval_cost(ctx, hit),
            retrieval_sources=ctx.retrieval_sources,
            grounded=ctx.grounded,
        )

    def _retrieval_cost(self, ctx: CallContext, hit: bool) -> Decimal | None:
        """The retrieved context's tokens at the answering deployment's input price (what
        grounding added to the bill); 0 for a cache hit; None without a known price."""
        if not ctx.retrieval_tokens:
            return None if ctx.retrieval_tokens is None else Decimal(0)
        if hit or ctx.attempts == 0:
            return Decimal(0)
        if ctx.deployment is None:
            return None
        return compute_cost(
            Usage(input_tokens=ctx.retrieval_tokens), self._price_of(ctx.deployment.id)
        )

    def _routing_saved(self, ctx: CallContext, cost: Decimal | None, status: int) -> Decimal | None:
        """The final answer's usage at the route's reference model price, minus what the call
        cost (every attempt, a cascade's cheap try included); None when not routed."""
        if ctx.route_reference is None or cost is None or ctx.last_response is None:
            return None
        if status >= 400:
            return None
        would = compute_cost(ctx.last_response.usage, self._price_of_model(ctx.route_reference))
        return None if would is None else would - cost

    def _preview(self, text: str | None) -> str | None:
        if not self._cfg.previews or not text:
            return None
        return preview(text, self._cfg.preview_chars)


def call_cost(ctx: CallContext) -> Decimal | None:
    """What the call cost: None only when some part of it used tokens at an unknown price.
    A call that settled nothing (it failed before any answer, used no tokens) cost $0."""
    if not ctx.cost_known:
        return None
    if ctx.cost_usd is None:
        return Decimal(0)
    return ctx.cost_usd


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _trace_id(traceparent: str | None) -> str | None:
    """W3C traceparent `00-<trace id>-<span id>-<flags>` → the trace id."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def _last_user_text(req: ChatRequest) -> str | None:
    for msg in reversed(req.messages):
        if msg.role in ("user", "tool"):
            texts = [p.text for p in msg.parts if isinstance(p, TextPart)]
            texts += [
                t.text
                for p in msg.parts
                if isinstance(p, ToolResultPart)
                for t in p.content
                if isinstance(t, TextPart)
            ]
            return " ".join(texts) or None
    return None


def _answer_text(resp: ChatResponse | None) -> str | None:
    if resp is None:
        return None
    return "".join(p.text for p in resp.parts if isinstance(p, TextPart)) or None


def _guards(headers: dict[str, str]) -> str | None:
    """The guard verdicts: the guard stage's, then the grounding stage's check of retrieved
    chunks (`x-sluice-retrieval-guard`, sluice.retrieval.screen), within the column's size."""
    found = [
        v for v in (headers.get("x-sluice-guard"), headers.get("x-sluice-retrieval-guard")) if v
    ]
    return ", ".join(found)[:1024] if found else None
