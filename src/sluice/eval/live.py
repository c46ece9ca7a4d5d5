"""Live evaluation: shadow traffic and online quality sampling, off the caller's path.

`LiveEvalStage` runs right after auth. For a route with `shadow` or `online_eval` set, it
decides by a hash of the request id and a secret salt (`sampled`: deterministic within the
process, so a share of 0.1 is 10% of calls within sampling noise, and a retried request id
is sampled the same way; the salt keeps a caller that chooses its request ids from choosing
to be sampled) whether the call is mirrored and/or judged. Nothing happens until the
caller's answer is complete: a plain answer once the rest of the pipeline returned it, a
stream once it ended in full. A failed or cut call is neither mirrored nor judged; an answer
served from a cache is judged but not mirrored; an idempotent replay is neither; a mirror
never reads or fills the caches. Then a job is put on a bounded queue (`Lane`): when the
queue is full the job is dropped and counted, never waited for, so a slow or failing
candidate or judge can never delay or fail the caller. At shutdown the jobs still queued or
running are abandoned (the gateway's stop never waits for a hanging candidate) and counted
as `lost`; a running call's record is still written (status 499).

Each job is a call of its own through the whole pipeline (`pipeline_call`, injected by the
gateway), with its own identity (`ShadowConfig.tenant` / `OnlineEvalConfig.tenant`: its
own budget line, never the caller's), its own request id and its own call record, linked to
the caller's call by `parent_request_id` and marked by `feature` (`sluice-shadow`,
`sluice-online-judge`). Shadow pairs (production vs candidate answer) and online scores are
kept in the records store's database (`sluice.eval.live_store`) for `sluice eval shadow
report` and the dashboard; scores also go to `sluice_quality_score{route,model}` and the
`quality_drop` alert rule (`QualityDrop`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry

from sluice.collect import WatchedStream
from sluice.errors import SluiceError
from sluice.eval.config import OnlineEvalConfig, ShadowConfig
from sluice.eval.judge import RESPONSE_FORMAT, JudgeError, judge_messages, parse_verdict
from sluice.eval.live_metrics import LiveMetrics, QualityDrop
from sluice.eval.live_store import LiveStore
from sluice.identity import Credentials, Identity
from sluice.observe.records import CACHE_HITS
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.types import CallMeta, ChatRequest, ChatResponse, Message, TextPart

log = logging.getLogger("sluice.eval")

SHADOW_FEATURE = "sluice-shadow"
JUDGE_FEATURE = "sluice-online-judge"
MAX_TEXT_CHARS = 16_000  # each answer kept for judging
INTERNAL = "sluice_internal"  # sluice.governance.scopes.INTERNAL (a sibling: not imported)
# Headers of sibling features (not imported: features do not import each other).
CACHE_HEADER = "x-sluice-cache"  # sluice.cache.exact.HEADER
REPLAY_HEADER = "x-sluice-idempotent-replay"  # sluice.cache.idempotency.REPLAY_HEADER

PipelineCall = Callable[[CallContext], Awaitable[Result]]
Finish = Callable[..., None]  # Recorder.finish


def sampled(request_id: str, share: float, salt: str) -> bool:
    """Whether a call is in the sampled `share`: a hash of its request id, uniform in [0, 1),
    under `share`. Deterministic; `salt` keeps shadow and online samples independent."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    digest = hashlib.blake2b(f"{salt}\x00{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def answer_text(resp: ChatResponse | None) -> str:
    if resp is None:
        return ""
    text = "".join(p.text for p in resp.parts if isinstance(p, TextPart))
    return text.replace("\x00", "")[:MAX_TEXT_CHARS]  # PostgreSQL text holds no NUL


def question_text(req: ChatRequest) -> str:
    """The conversation as the judge reads it: system prompt, then each turn's text."""
    lines = [f"system: {' '.join(p.text for p in req.system)}"] if req.system else []
    for msg in req.messages:
        text = " ".join(p.text for p in msg.parts if isinstance(p, TextPart))
        if text:
            lines.append(f"{msg.role}: {text}")
    return "\n".join(lines).replace("\x00", "")[-MAX_TEXT_CHARS:]


# --- the queues ------------------------------------------------------------------------


Job = Callable[[], Awaitable[None]]


class Lane:
    """A bounded queue of jobs and its workers (started with the first job): `offer` never
    waits; a full queue drops the job and says so."""

    def __init__(self, size: int, workers: int) -> None:
        self._size, self._workers = size, workers
        self._queue: asyncio.Queue[Job] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._running = 0

    def offer(self, job: Job) -> bool:
        if self._queue is None:
            self._queue = asyncio.Queue(self._size)
            self._tasks = [asyncio.create_task(self._work()) for _ in range(self._workers)]
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            return False
        return True

    @property
    def waiting(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            self._running += 1
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:  # a job logs its own failures; this is the last guard
                log.exception("live eval: a job failed")
            finally:
                self._running -= 1
                self._queue.task_done()

    async def join(self) -> None:
        """Wait until every queued job is done (tests, orderly shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> int:
        """Stop the workers; the jobs abandoned (queued or running), to be counted."""
        lost = self._running + self.waiting
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._queue = None
        self._running = 0
        return lost


# --- the stage -------------------------------------------------------------------------


@dataclass(slots=True)
class LiveStats:
    """Counts since start, per route (the dashboard's shadow and online panels)."""

    shadow: dict[str, dict[str, int]] = field(default_factory=dict)
    online: dict[str, dict[str, int]] = field(default_factory=dict)

    @staticmethod
    def bump(table: dict[str, dict[str, int]], route: str, outcome: str) -> None:
        row = table.setdefault(route, {})
        row[outcome] = row.get(outcome, 0) + 1


class LiveEval:
    """Shadow mirrors and online judgements for the routes that configure them.

    `pipeline_call` runs a call through the gateway's whole pipeline (injected: the gateway
    sits above this package); `finish` writes its call record (`Recorder.finish`); `store`
    (optional) keeps pairs and scores; `metrics` is where the counters live."""

    def __init__(
        self,
        shadow: Mapping[str, ShadowConfig],
        online: Mapping[str, OnlineEvalConfig],
        pipeline_call: PipelineCall,
        finish: Finish,
        metrics: LiveMetrics,
        store_url: str | None = None,  # the records store's database, opened at start
    ) -> None:
        self.shadow, self.online = dict(shadow), dict(online)
        self._call, self._finish = pipeline_call, finish
        self.metrics = metrics
        self._store_url = store_url
        self.store: LiveStore | None = None
        self.quality_rule = QualityDrop(self.online)
        self.stats = LiveStats()
        self._lanes: dict[tuple[str, str], Lane] = {}
        # Request ids of the calls this object is making (mirrors, judgements): never sampled
        # again. Not the `feature` label, which any caller may send (`x-sluice-feature`).
        self.own: set[str] = set()
        self._closed = False  # after `close`, a late answer's jobs are lost, not started
        # A caller may choose its request id: a secret salt (per process) keeps it from
        # choosing to be mirrored, or to escape the online judge.
        self.salt = secrets.token_hex(16)
        self._children: dict[tuple[str, str, str], Any] = {}
        for route, s in self.shadow.items():
            self._lanes[("shadow", route)] = Lane(s.queue, s.concurrency)
        for route, o in self.online.items():
            self._lanes[("online", route)] = Lane(o.queue, o.concurrency)

    @property
    def routes(self) -> frozenset[str]:
        return frozenset((*self.shadow, *self.online))

    async def start(self) -> None:
        self._closed = False
        if self._store_url is not None:
            self.store = await asyncio.to_thread(LiveStore.open, self._store_url)

    async def join(self) -> None:
        for lane in self._lanes.values():
            await lane.join()

    async def close(self) -> None:
        self._closed = True
        for (kind, route), lane in self._lanes.items():
            for _ in range(await lane.close()):
                self._count(kind, route, "lost")
        if self.store is not None:
            self.store.close()
            self.store = None

    # called by the stage once the caller's answer is complete
    def completed(
        self, route: str, original: ChatRequest, ctx: CallContext, resp: ChatResponse
    ) -> None:
        request_id = original.meta.request_id
        # An idempotent replay is an earlier answer sent again: not a new one to weigh.
        replay = ctx.response_headers.get(REPLAY_HEADER) == "true"
        shadow = self.shadow.get(route)
        if shadow is not None and sampled(request_id, shadow.sample, f"shadow:{self.salt}"):
            # A cache hit's latency and cost are the cache's, not the production model's.
            if replay or ctx.cache_status in CACHE_HITS:
                self._count("shadow", route, "skipped")
            else:
                self._offer("shadow", route, self._mirror_job(route, shadow, original, ctx, resp))
        online = self.online.get(route)
        if online is not None and sampled(request_id, online.sample, f"online:{self.salt}"):
            if replay:
                self._count("online", route, "skipped")
            else:
                self._offer("online", route, self._judge_job(route, online, original, ctx, resp))

    def _offer(self, kind: str, route: str, job: Job) -> None:
        if self._closed:  # a stream that ended after shutdown (cut loose by a drain)
            self._count(kind, route, "lost")
            return
        accepted = self._lanes[(kind, route)].offer(job)
        if not accepted:
            self._count(kind, route, "dropped")

    def _count(self, kind: str, route: str, outcome: str) -> None:
        """One outcome, in the stats and the metrics (the labelled child is looked up once:
        a drop is counted on the caller's path)."""
        key = (kind, route, outcome)
        child = self._children.get(key)
        if child is None:
            counter = self.metrics.shadow if kind == "shadow" else self.metrics.online
            child = self._children[key] = counter.labels(self.metrics.route(route), outcome)
        child.inc()
        LiveStats.bump(self.stats.shadow if kind == "shadow" else self.stats.online, route, outcome)

    def _mirror_job(
        self,
        route: str,
        cfg: ShadowConfig,
        original: ChatRequest,
        ctx: CallContext,
        resp: ChatResponse,
    ) -> Job:
        production_model = ctx.request.model
        production_ms = (time.perf_counter() - ctx.started) * 1000
        caller_tenant = ctx.identity.tenant

        async def run() -> None:
            production = answer_text(resp)
            request = _copy(original, cfg.candidate, SHADOW_FEATURE, "shd")
            call = await self._own_call(request, cfg.tenant)
            outcome = "mirrored" if call.error is None else "failed"
            self._count("shadow", route, outcome)
            if self.store is not None:
                await asyncio.to_thread(
                    self.store.put_pair,
                    {
                        "request_id": original.meta.request_id,
                        "route": route,
                        "tenant": caller_tenant,
                        "production_model": production_model,
                        "candidate": cfg.candidate,
                        "candidate_request_id": request.meta.request_id,
                        "ts": time.time(),
                        "question": question_text(original),
                        "production": production,
                        "candidate_output": None if call.error else answer_text(call.response),
                        "production_ms": production_ms,
                        "candidate_ms": call.latency_ms,
                        "error": call.error,
                    },
                )

        return run

    def _judge_job(
        self,
        route: str,
        cfg: OnlineEvalConfig,
        original: ChatRequest,
        ctx: CallContext,
        resp: ChatResponse,
    ) -> Job:
        model = ctx.request.model  # what served it (a route's pick)
        caller_tenant = ctx.identity.tenant

        async def run() -> None:
            answer = answer_text(resp)
            if not answer.strip():  # tool calls only: nothing a text rubric can grade
                self._count("online", route, "skipped")
                return
            messages = judge_messages(cfg.rubric, question_text(original), answer, None)
            request = ChatRequest(
                model=cfg.judge_model,
                messages=[
                    Message(role="user", parts=[TextPart(m["content"])])
                    for m in messages
                    if m["role"] == "user"
                ],
                system=[TextPart(m["content"]) for m in messages if m["role"] == "system"],
                response_format=RESPONSE_FORMAT,
                temperature=0,
                meta=_meta(original.meta.request_id, JUDGE_FEATURE, "jdg"),
            )
            call = await self._own_call(request, cfg.tenant)
            if call.error is not None:
                self._count("online", route, "failed")
                return
            try:
                verdict = parse_verdict(answer_text(call.response), request.meta.request_id)
            except JudgeError as exc:
                log.info("online judge for %s: %s", original.meta.request_id, exc)
                self._count("online", route, "failed")
                return
            now = time.time()
            score = verdict.normalized
            self._count("online", route, "judged")
            self.metrics.quality.labels(
                self.metrics.route(route), self.metrics.model(model)
            ).observe(score)
            self.quality_rule.add(route, score, now)
            if self.store is not None:
                await asyncio.to_thread(
                    self.store.put_score,
                    {
                        "request_id": original.meta.request_id,
                        "route": route,
                        "model": model,
                        "ts": now,
                        "score": score,
                        "verdict": verdict.score,
                        "reason": verdict.reason,
                        "judge_request_id": request.meta.request_id,
                        "tenant": caller_tenant,
                    },
                )

        return run

    async def _own_call(self, request: ChatRequest, tenant: str) -> OwnCall:
        """One call through the pipeline as `tenant`, with its own call record. None of the
        caller's forwarded headers go with it (an upstream project or attribution header
        would bill or attribute Sluice's call to the caller; a header could steer a judge)."""
        request.meta.forward_headers = {}
        self.own.add(request.meta.request_id)
        # INTERNAL: outside the callers' gateway-wide rate limit (sluice.governance.scopes);
        # its own key, tenant and budgets still apply.
        identity = Identity(
            key_id=f"{tenant}:internal", tenant=tenant, user=tenant, metadata={INTERNAL: True}
        )
        ctx = CallContext(request, credentials=Credentials(resolved=identity))
        started, wall = ctx.started, time.time()
        status, error_type, error = 200, None, None
        response: ChatResponse | None = None
        try:
            result = await self._call(ctx)
            if isinstance(result, ChatResponse):
                response = result
            else:  # not asked for, but a stage may stream: drain it (it settles at its end)
                try:
                    async for _ in result:
                        pass
                finally:
                    await result.aclose()
                response = ctx.last_response
        except SluiceError as err:
            status, error_type, error = err.http_status, err.code, f"{err.code}: {err.message}"
        except asyncio.CancelledError:
            status, error_type = 499, "cancelled"
            raise
        except Exception as exc:  # never let a candidate's failure escape the worker
            log.exception("live eval call %s failed", request.meta.request_id)
            status, error_type, error = 500, "internal_error", type(exc).__name__
        finally:
            self.own.discard(request.meta.request_id)
            self._finish(
                ctx,
                request_id=request.meta.request_id,
                started=started,
                wall_start=wall,
                status=status,
                error_type=error_type,
            )
        latency_ms = (time.perf_counter() - started) * 1000
        return OwnCall(response, latency_ms, error[:500] if error else None)


@dataclass(frozen=True, slots=True)
class OwnCall:
    response: ChatResponse | None
    latency_ms: float
    error: str | None


def _meta(parent: str, feature: str, prefix: str) -> CallMeta:
    request_id = f"{prefix}_{secrets.token_hex(12)}"
    return CallMeta(
        request_id=request_id,
        feature=feature,
        headers={"x-sluice-parent-request-id": parent, "x-sluice-feature": feature},
    )


def _copy(original: ChatRequest, model: str, feature: str, prefix: str) -> ChatRequest:
    """The caller's request for another model, not streamed, as a call of its own, past the
    caches (`no-store`): the candidate is really called, its latency is its own."""
    meta = _meta(original.meta.request_id, feature, prefix)
    meta.headers[CACHE_HEADER] = "no-store"
    meta.wire = original.meta.wire
    meta.max_tokens_field = original.meta.max_tokens_field
    return ChatRequest(
        model=model,
        messages=list(original.messages),
        system=list(original.system),
        tools=list(original.tools),
        tool_choice=original.tool_choice,
        parallel_tool_calls=original.parallel_tool_calls,
        response_format=original.response_format,
        max_tokens=original.max_tokens,
        temperature=original.temperature,
        top_p=original.top_p,
        top_k=original.top_k,
        stop=list(original.stop),
        seed=original.seed,
        stream=False,
        native_tools=list(original.native_tools),
        extras=dict(original.extras),
        meta=meta,
    )


class LiveEvalStage:
    """See the module docstring. In the pipeline only when some route configures shadow
    traffic or online evaluation."""

    def __init__(self, live: LiveEval) -> None:
        self.live = live
        self._routes = live.routes

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        route = ctx.request.model
        if route not in self._routes or ctx.request.meta.request_id in self.live.own:
            return await nxt(ctx)
        original = ctx.request
        result = await nxt(ctx)
        if isinstance(result, ChatResponse):
            self.live.completed(route, original, ctx, result)
            return result

        async def at_end(resp: ChatResponse, completed: bool) -> None:
            if completed:
                self.live.completed(route, original, ctx, resp)

        return WatchedStream(result, at_end)


def build_live_stage(
    routes: Mapping[str, Any],
    registry: CollectorRegistry,
    models: Collection[str],
    pipeline_call: PipelineCall,
    finish: Finish,
    store_url: str | None,
) -> LiveEvalStage | None:
    """The stage for the routes (`RouteConfig`s) with `shadow` or `online_eval` set; None
    when no route has either (the stage is then not in the pipeline)."""
    shadow = {name: r.shadow for name, r in routes.items() if r.shadow is not None}
    online = {name: r.online_eval for name, r in routes.items() if r.online_eval is not None}
    if not shadow and not online:
        return None
    metrics = LiveMetrics(registry, routes=[*shadow, *online], models=models)
    live = LiveEval(shadow, online, pipeline_call, finish, metrics, store_url)
    return LiveEvalStage(live)
