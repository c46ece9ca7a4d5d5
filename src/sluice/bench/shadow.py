"""`sluice bench shadow`: what live evaluation adds to the caller's path, in-process.

The caller's side of `LiveEvalStage` (sluice.eval.live) with a trivial downstream: the
sampling hash, and for a sampled call building the job and offering it to the bounded
queue. Three cases per call: the route has no live evaluation (the stage is not in the
pipeline: the baseline), shadow + online at sample 1.0 with mirrors that never finish (the
queue fills; then every call is dropped and counted), and the same with instant mirrors.
The jobs themselves run on their own tasks, never on the caller's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CollectorRegistry

from sluice.eval.config import OnlineEvalConfig, ShadowConfig
from sluice.eval.live import LiveEval, LiveEvalStage
from sluice.eval.live_metrics import LiveMetrics
from sluice.pipeline.context import CallContext, Result
from sluice.types import CallMeta, ChatRequest, ChatResponse, Message, TextPart, Usage


async def _answer(ctx: CallContext) -> Result:
    ctx.usage = Usage(20, 10)
    return ChatResponse("r", ctx.request.model, [TextPart("an answer " * 20)])


def _ctx(i: int) -> CallContext:
    msgs = [Message("user", [TextPart("Where is my order? " * 4)])]
    meta = CallMeta(request_id=f"req_{i:032x}")
    return CallContext(ChatRequest("support", msgs, meta=meta))


async def _hang(ctx: CallContext) -> Result:
    await asyncio.Event().wait()
    raise AssertionError


async def _instant(ctx: CallContext) -> Result:
    return ChatResponse("r", ctx.request.model, [TextPart('{"score": 4, "reason": "ok"}')])


def _finish(*args: Any, **kwargs: Any) -> None:
    return None


async def _per_call_us(
    handler: Callable[[CallContext], Awaitable[Result]], n: int, start: int
) -> tuple[float, float]:
    """µs per call on the caller's path (the handler), and µs per call of loop time spent
    between calls (where the queued jobs run), over `n` calls."""
    contexts = [_ctx(start + i) for i in range(n)]
    caller = 0.0
    began = time.perf_counter()
    for ctx in contexts:
        t0 = time.perf_counter()
        await handler(ctx)
        caller += time.perf_counter() - t0
        await asyncio.sleep(0)  # a server yields between requests: the workers get to run
    total = time.perf_counter() - began
    return caller / n * 1e6, (total - caller) / n * 1e6


async def _run(count: int) -> str:
    shadow = {"support": ShadowConfig(candidate="cand", sample=1.0, queue=64)}
    online = {"support": OnlineEvalConfig(judge_model="judge", sample=1.0, queue=64)}
    lines = [
        f"live evaluation, {count} calls in sequence, µs per call: on the caller's path, and "
        "loop time between calls (the queued mirror/judge jobs, trivial upstream)"
    ]
    base, idle = await _per_call_us(_answer, count, 0)
    lines.append(
        f"  {'no live evaluation (baseline)':<52} caller {base:7.2f}   between calls {idle:7.2f}"
    )
    for name, mirror in (
        ("never finish (queue full: dropped)", _hang),
        ("finish at once", _instant),
    ):
        live = LiveEval(
            shadow,
            online,
            mirror,
            _finish,
            LiveMetrics(CollectorRegistry(), ["support"], ["support"]),
        )
        stage = LiveEvalStage(live)

        async def handler(ctx: CallContext, stage: LiveEvalStage = stage) -> Result:
            return await stage(ctx, _answer)

        await _per_call_us(handler, 200, 10**9)  # warm-up (fills the queue when hanging)
        took, jobs = await _per_call_us(handler, count, 2 * 10**9)
        stats = {k: dict(v) for k, v in live.stats.shadow.items()}
        await live.close()
        lines.append(
            f"  {'shadow + online at 1.0, mirrors ' + name:<52} caller {took:7.2f}   "
            f"between calls {jobs:7.2f}   shadow: {stats.get('support', {})}"
        )
    return "\n".join(lines)


def run(count: int) -> str:
    return asyncio.run(_run(count))
