"""Semantic cache stage: a question that means the same as a stored one gets its answer.

Runs right after the exact cache and follows its rules (temperature 0 unless
`cache_nondeterministic`, no tool results unless `cache_tool_results`, the `x-sluice-cache`
directives no-store / no-cache / refresh). Only the last user message is compared by
meaning; everything else must match exactly (see `scope`). A hit needs cosine >= threshold,
the contrast guard passing against the stored question, an unexpired entry and, when a
judge is configured, the judge agreeing.

Headers on a hit: `x-sluice-cache: semantic`, `x-sluice-cache-similarity` (3 decimals) and
`x-sluice-cache-age` (whole seconds). An embedding that fails or times out is a miss (logged,
counted), never an error for the caller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from sluice.cache.backends import decode_response_blob, encode_response_blob
from sluice.cache.exact import AGE_HEADER, HEADER, cache_directive, replay_safe, tenant_of
from sluice.cache.semantic.calibration import NEVER, threshold_from_scores
from sluice.cache.semantic.catalog import Match, SemanticCatalog, SemanticEntry
from sluice.cache.semantic.config import SemanticCacheConfig
from sluice.cache.semantic.decision import NEAR_FLOOR, Verdict, screen, verdict_from_score
from sluice.cache.semantic.scope import last_user_text, scope_of
from sluice.cache.semantic.store import MemoryStore, SemanticStore
from sluice.collect import WatchedStream
from sluice.pipeline.context import CURRENT_CALL, CallContext, Handler, Result
from sluice.replay import events_from_response
from sluice.types import ChatRequest, ChatResponse

log = logging.getLogger("sluice.cache.semantic")

SIMILARITY_HEADER = "x-sluice-cache-similarity"
SCORE_HEADER = "x-sluice-cache-score"  # the pair verifier's score of a semantic hit
_SAME = 0.9999  # at or above: the same question (searched for even above the threshold)
STATUS = "semantic"
NORMALIZED = "normalized"

Guard = Callable[[str, str], "str | None"]  # a reason to refuse, or None
Judge = Callable[[str, str], Awaitable[bool]]  # True: the two questions want one answer


class Verifier(Protocol):
    """Scores (question, stored question) pairs; `sluice.cache.semantic.verifier`."""

    async def ascores(self, question: str, candidates: list[str]) -> list[float]: ...


Calibration = tuple[float, ...]  # look-alike decision scores of the calibration split, sorted


class Embedder(Protocol):
    @property
    def dim(self) -> int: ...

    async def embed(self, texts: list[str]) -> npt.NDArray[np.float32]: ...


@dataclass(slots=True)
class SemanticStats:
    hits: int = 0
    misses: int = 0
    bypasses: int = 0
    stores: int = 0
    errors: int = 0  # embedding, store and decode failures
    embed_errors: int = 0  # of which: embeddings that failed or timed out
    refused: int = 0  # candidates the guard, verifier or judge refused
    hits_normalized: int = 0  # of the hits: same canonical question (no model)
    hits_semantic: int = 0  # of the hits: served by meaning (guard + verifier)
    judge_refused: int = 0
    verifier_errors: int = 0


@dataclass(frozen=True, slots=True)
class RouteSettings:
    enabled: bool
    threshold: float  # the verifier's (calibrated), or a cosine when threshold_is_cosine
    ttl_s: float
    threshold_is_cosine: bool = False


class SemanticCacheStage:
    cache_kind = "semantic"  # its name in the admin API (sluice.cache.admin.Purgeable)

    def __init__(
        self,
        config: SemanticCacheConfig,
        embedder: Callable[[], Embedder],
        store: SemanticStore | None = None,
        *,
        guard: Guard | None = None,
        judge: Judge | None = None,
        clock: Callable[[], float] = time.time,
        verifier: Callable[[], tuple[Verifier, Calibration]] | None = None,
    ) -> None:
        self.config = config
        self.store: SemanticStore = store or MemoryStore()
        self.stats = SemanticStats()
        self.catalog: SemanticCatalog | None = None
        self._make_embedder = embedder
        self._embedder: Embedder | None = None
        self._guard = guard if config.guard else None
        self._judge = judge if config.verify.enabled else None
        self._clock = clock
        self._models = None if config.models is None else frozenset(config.models)
        self._start_lock = asyncio.Lock()
        self._unavailable = False  # the embedder could not load: the stage passes through
        self._make_verifier = verifier if config.verifier else None
        self._verifier: Verifier | None = None
        self._calibration: Calibration = ()  # empty: no semantic hits (normalized only)
        self._entry_floor: dict[str, float] = {}  # per-entry thresholds, raised on refusal

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the embedder (in a thread: it reads the model) and the stored entries."""
        async with self._start_lock:
            if self.catalog is not None or self._unavailable:
                return
            cfg = self.config
            try:
                embedder = await asyncio.to_thread(self._make_embedder)
                await embedder.embed(["warm up"])  # the model loads on first use
                await self._start_verifier()
                catalog = SemanticCatalog(
                    embedder.dim, cfg.max_entries, self._clock, cfg.ann_min_entries
                )
            except Exception as exc:
                self._unavailable = True
                self.stats.errors += 1
                log.error("semantic cache off: %s", exc)
                return
            try:
                await self.store.open(catalog)
            except Exception as exc:
                self.stats.errors += 1
                log.error("semantic cache store did not open (memory only): %r", exc)
                self.store = MemoryStore()
            self._embedder, self.catalog = embedder, catalog

    async def _start_verifier(self) -> None:
        """Load the pair verifier; without it the stage serves normalized hits only."""
        if self._make_verifier is None:
            return
        try:
            verifier, calibration = await asyncio.to_thread(self._make_verifier)
            await verifier.ascores("warm up", ["warm up"])
        except Exception as exc:
            self.stats.errors += 1
            self.stats.verifier_errors += 1
            log.error("pair verifier off, semantic tier serves nothing: %s", exc)
            return
        self._verifier, self._calibration = verifier, calibration

    async def _verify(self, question: str, candidates: list[str]) -> list[float]:
        if self._verifier is None:
            return [0.0] * len(candidates)
        return await self._verifier.ascores(question, candidates)

    def threshold(self, rate: float) -> float:
        """The verifier threshold that serves at most `rate` of the calibration look-alikes."""
        return threshold_from_scores(self._calibration, rate) if self._calibration else NEVER

    async def close(self) -> None:
        await self.store.close()

    def snapshot(self) -> dict[str, int]:
        """Counters plus live entries and bytes held (for /metrics and the admin API)."""
        catalog = self.catalog
        return {
            **asdict(self.stats),
            "entries": len(catalog) if catalog is not None else 0,
            "bytes": catalog.nbytes if catalog is not None else 0,
        }

    def stats_json(self) -> dict[str, Any]:
        """The admin API's view (`GET /admin/cache/stats`): counters, entries, bytes, rates."""
        snap = self.snapshot()
        looked = snap["hits"] + snap["misses"]
        return {
            **snap,
            "hit_rate": snap["hits"] / looked if looked else 0.0,
            "miss_rate": snap["misses"] / looked if looked else 0.0,
        }

    async def purge(
        self, entry_id: str | None = None, route: str | None = None, tenant: str | None = None
    ) -> int:
        """Drop entries here and in the durable store (every replica follows); all when no
        argument is given. Returns how many entries this replica dropped, or the durable
        count when that is larger (entries another replica held)."""
        catalog = self.catalog
        local = 0
        if catalog is not None:
            if entry_id is not None:
                entry = catalog.get(entry_id)
                match = (
                    entry is not None
                    and (tenant in (None, entry.tenant))
                    and (route in (None, entry.route))
                )
                local = int(match and catalog.remove(entry_id))
            else:
                local = catalog.purge(tenant, route)
        try:
            durable = await self.store.purge(tenant, route, entry_id)
        except Exception as exc:
            self.stats.errors += 1
            log.warning("semantic cache purge in the store failed: %r", exc)
            durable = 0
        return max(local, durable)

    # --- the stage ----------------------------------------------------------------------

    def settings(self, route: str) -> RouteSettings:
        cfg = self.config
        over = cfg.routes.get(route)
        enabled = cfg.enabled and (self._models is None or route in self._models)
        ttl = cfg.ttl_s
        rate, cosine = cfg.target_false_hit_rate, cfg.threshold
        if over is not None:
            enabled = enabled if over.enabled is None else enabled and over.enabled
            ttl = ttl if over.ttl_s is None else over.ttl_s
            rate = rate if over.target_false_hit_rate is None else over.target_false_hit_rate
            cosine = cosine if over.threshold is None else over.threshold
        if self._make_verifier is None:  # verifier: false (or none given): the v1 rule
            return RouteSettings(enabled, cosine, ttl, threshold_is_cosine=True)
        return RouteSettings(enabled, self.threshold(rate), ttl)

    def cacheable(self, req: ChatRequest) -> bool:
        cfg = self.config
        return replay_safe(req, cfg.cache_nondeterministic, cfg.cache_tool_results)

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        req = ctx.request
        route = ctx.route or req.model
        settings = self.settings(route)
        if not settings.enabled:
            return await nxt(ctx)
        directive = cache_directive(req)
        # Cheapest checks first: most uncacheable calls never look at their text.
        cacheable = directive != "no-store" and self.cacheable(req)
        question = last_user_text(req) if cacheable else None
        if question is None or len(question) > self.config.max_question_chars:
            self.stats.bypasses += 1
            ctx.response_headers.setdefault(HEADER, "bypass")
            if ctx.cache_status is None:
                ctx.cache_status = "bypass"
            return await nxt(ctx)
        if self.catalog is None:
            await self.start()
        tenant = tenant_of(ctx)
        scope = scope_of(req, tenant, route, self.config.namespace)
        if directive is None:
            normalized = self._normalized_hit(ctx, scope, question)
            if normalized is not None:
                return normalized
        vector = await self._embed(question, req)
        matches: list[Match] = []
        if vector is not None and self.catalog is not None:
            # One search serves both the lookup and finding the entry a store replaces.
            cfg = self.config
            floor = (
                settings.threshold
                if settings.threshold_is_cosine
                else min(cfg.min_similarity, NEAR_FLOOR)
            )
            matches = self.catalog.search(scope, vector, min(floor, _SAME), cfg.candidates)
        if directive is None and matches:
            token = CURRENT_CALL.set(ctx)  # a judge's model call is charged to this call
            try:
                hit = await self._lookup(question, matches, settings, ctx)
            finally:
                CURRENT_CALL.reset(token)
            if hit is not None:
                return self._serve(ctx, *hit)
        self.stats.misses += 1
        ctx.response_headers[HEADER] = "miss"
        ctx.cache_status = "miss"
        result = await nxt(ctx)
        if vector is None:
            return result
        # The same question asked again (a refresh, or concurrent misses) replaces its entry.
        same_ids = tuple(m.entry.id for m in matches if m.entry.question == question)
        key = _EntryKey(tenant, route, scope, question, vector, settings.ttl_s, same_ids)
        if isinstance(result, ChatResponse):
            if _storable(ctx, result):
                await self.store_answer(key, result)
            return result

        async def store_if_whole(resp: ChatResponse, completed: bool) -> None:
            if completed and _storable(ctx, resp):  # never a cut or failed stream
                await self.store_answer(key, resp)

        return WatchedStream(result, store_if_whole)

    def _normalized_hit(self, ctx: CallContext, scope: str, question: str) -> Result | None:
        """The normalized tier: an entry whose question has the same canonical form."""
        if not self.config.normalized or self.catalog is None:
            return None
        same = self.catalog.find_canonical(scope, question)  # no embedding needed
        served = self._decode(Match(same, 1.0)) if same is not None else None
        if same is None or served is None:
            return None
        verdict = Verdict(True, NORMALIZED, "same canonical form")
        return self._serve(ctx, Match(same, 1.0), *served, verdict)

    def _serve(
        self,
        ctx: CallContext,
        match: Match,
        resp: ChatResponse,
        stored_at: float,
        verdict: Verdict,
    ) -> Result:
        tier = verdict.tier or STATUS
        self.stats.hits += 1
        if tier == NORMALIZED:
            self.stats.hits_normalized += 1
        else:
            self.stats.hits_semantic += 1
        ctx.response_headers[HEADER] = tier
        ctx.response_headers[SIMILARITY_HEADER] = f"{match.similarity:.3f}"
        if verdict.score is not None:
            ctx.response_headers[SCORE_HEADER] = f"{verdict.score:.3f}"
        ctx.response_headers[AGE_HEADER] = str(int(max(0.0, self._clock() - stored_at)))
        ctx.cache_status = tier
        ctx.cache_similarity = round(match.similarity, 4)
        ctx.cache_score = None if verdict.score is None else round(verdict.score, 4)
        ctx.cache_decision = record_line(verdict)
        ctx.last_response = resp
        assert self.catalog is not None
        self.catalog.touch(match.entry.id)
        return events_from_response(resp) if ctx.request.stream else resp

    async def _embed(self, question: str, req: ChatRequest) -> npt.NDArray[np.float32] | None:
        embedder = self._embedder
        if embedder is None:
            return None  # the embedder did not load (logged at start)
        try:
            vectors = await asyncio.wait_for(
                embedder.embed([question]), timeout=self.config.embed_timeout_s
            )
            return np.asarray(vectors[0], dtype=np.float32)
        except Exception as exc:  # TimeoutError included
            self.stats.errors += 1
            self.stats.embed_errors += 1
            log.warning("request %s: embedding failed, a miss: %r", req.meta.request_id, exc)
            return None

    async def _lookup(
        self,
        question: str,
        matches: list[Match],
        settings: RouteSettings,
        ctx: CallContext | None = None,
    ) -> tuple[Match, ChatResponse, float, Verdict] | None:
        """The best candidate the decision rule serves (see `decision`), decoded; on a miss the
        best refused candidate's score and reason go to `ctx` (the call record)."""
        for match, verdict in await self._judge_candidates(question, matches, settings):
            if not verdict.serve:
                if ctx is not None and ctx.cache_decision is None:
                    ctx.cache_score = verdict.score
                    ctx.cache_decision = record_line(verdict)
                if verdict.similarity is None or verdict.similarity >= self.config.min_similarity:
                    self.stats.refused += 1  # not the near-verbatim search's extra candidates
                log.debug("semantic candidate %s refused: %s", match.entry.id, verdict.reason)
                continue
            if verdict.tier == STATUS and self._needs_judge(verdict, settings):
                reason = await self._ask_judge(question, match.entry.question)
                if reason is not None:
                    self.stats.refused += 1
                    self.stats.judge_refused += 1
                    self.tighten(match.entry.id, verdict.score)
                    continue
            decoded = self._decode(match)
            if decoded is not None:
                return match, *decoded, verdict
        return None

    async def _judge_candidates(
        self, question: str, matches: list[Match], settings: RouteSettings
    ) -> list[tuple[Match, Verdict]]:
        """Verdicts for the candidates, best first: screen (no model), then the verifier."""
        if settings.threshold_is_cosine:  # the v1 rule: cosine threshold plus guard
            return [(m, self._cosine_verdict(question, m, settings.threshold)) for m in matches]
        screened = [(m, self._screen(question, m)) for m in matches]
        ask = [m for m, v in screened if v is None]
        scores: list[float] = []
        if ask:
            try:
                scores = await self._verify(question, [m.entry.question for m in ask])
            except Exception as exc:  # fail closed: no verifier, no semantic hit
                self.stats.errors += 1
                self.stats.verifier_errors += 1
                log.warning("pair verifier failed, a miss: %r", exc)
                scores = [0.0] * len(ask)
        by_id = {m.entry.id: s for m, s in zip(ask, scores, strict=True)}
        out = []
        for m, v in screened:
            if v is None:
                floor = max(settings.threshold, self._entry_floor.get(m.entry.id, 0.0))
                v = verdict_from_score(m.similarity, by_id[m.entry.id], floor)
            out.append((m, v))
        out.sort(key=lambda mv: (mv[1].serve, mv[1].tier == NORMALIZED, mv[1].score or 0.0))
        out.reverse()
        return out

    def _screen(self, question: str, m: Match) -> Verdict | None:
        """`decision.screen`, except that an entry reported wrong is never served by meaning
        again, not even to a near-verbatim question."""
        v = screen(
            question, m.entry.question, m.similarity, self.config.min_similarity, self._guard
        )
        if v is not None and v.serve and self._entry_floor.get(m.entry.id, 0.0) >= NEVER:
            return Verdict(False, None, "entry reported wrong", m.similarity)
        return v

    def _cosine_verdict(self, question: str, match: Match, threshold: float) -> Verdict:
        if match.similarity < threshold:
            return Verdict(False, None, "cosine below threshold", match.similarity)
        reason = self._guard(question, match.entry.question) if self._guard else None
        if reason is not None:
            return Verdict(False, None, f"guard: {reason}", match.similarity)
        return Verdict(True, STATUS, "cosine at or above threshold", match.similarity)

    def _needs_judge(self, verdict: Verdict, settings: RouteSettings) -> bool:
        if self._judge is None:
            return False
        if verdict.score is None:  # the v1 cosine rule: the judge reads every hit; a
            return settings.threshold_is_cosine  # near-verbatim hit needs no judge
        return verdict.score < settings.threshold + self.config.verify.band

    def tighten(self, entry_id: str, score: float | None) -> None:
        """Raise one entry's own threshold above a score that was judged wrong (or to "never"
        when a served answer is reported wrong): per-entry thresholds in the vCache spirit."""
        if len(self._entry_floor) >= self.config.max_entries:
            self._entry_floor.clear()
        bar = NEVER if score is None else math.nextafter(score, math.inf)
        self._entry_floor[entry_id] = max(self._entry_floor.get(entry_id, 0.0), bar)

    def report_wrong(self, entry_id: str) -> None:
        """Feedback: a semantic hit of this entry was wrong; it is never served by meaning again."""
        self.tighten(entry_id, None)

    def _decode(self, match: Match) -> tuple[ChatResponse, float] | None:
        try:
            return decode_response_blob(match.entry.blob)
        except ValueError as exc:
            self.stats.errors += 1
            log.warning("semantic entry %s unreadable, dropped: %s", match.entry.id, exc)
            if self.catalog is not None:
                self.catalog.remove(match.entry.id)
            return None

    async def _ask_judge(self, question: str, stored: str) -> str | None:
        assert self._judge is not None
        try:
            same = await asyncio.wait_for(
                self._judge(question, stored), timeout=self.config.verify.timeout_s
            )
        except Exception as exc:
            self.stats.errors += 1
            log.warning("semantic judge failed, the hit is refused: %r", exc)
            return "judge failed"
        return None if same else "judge: different questions"

    async def store_answer(self, key: _EntryKey, resp: ChatResponse) -> None:
        catalog = self.catalog
        if catalog is None:
            return
        now = self._clock()
        entry = SemanticEntry(
            id=uuid.uuid4().hex,
            tenant=key.tenant,
            route=key.route,
            scope=key.scope,
            question=key.question,
            vector=key.vector,
            blob=encode_response_blob(resp, now),
            created_at=now,
            expires_at=now + key.ttl_s,
        )
        stale = [entry_id for entry_id in key.replaces if catalog.remove(entry_id)]
        catalog.add(entry)
        self.stats.stores += 1
        if self.stats.stores % 256 == 0:
            catalog.expire()
        try:
            for entry_id in stale:
                await self.store.delete(entry_id)
            await self.store.put(entry)
        except Exception as exc:
            self.stats.errors += 1
            log.warning("semantic cache write failed (kept in this replica): %r", exc)


@dataclass(frozen=True, slots=True)
class _EntryKey:
    """What a miss needs to store its answer once it has one."""

    tenant: str
    route: str
    scope: str
    question: str
    vector: Any
    ttl_s: float
    replaces: tuple[str, ...] = ()  # entries of the same question in the same scope


def _storable(ctx: CallContext, resp: ChatResponse) -> bool:
    # A degraded answer stands in for a failure; a filtered one is not the model's answer.
    return not ctx.degraded and resp.finish_reason != "content_filter"


def default_guard() -> Guard:
    from sluice.cache.semantic.guard import contrast

    return contrast


def record_line(verdict: Verdict, limit: int = 120) -> str:
    """The decision for the call record: one line, bounded, and free of the question's words
    (a guard reason keeps its kind only: "guard: entity", never the entity)."""
    reason = verdict.reason
    if reason.startswith("guard: "):
        reason = "guard: " + reason[7:].split(":", 1)[0][:24]
    line = " ".join(dataclasses.replace(verdict, reason=reason).describe().split())
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"
