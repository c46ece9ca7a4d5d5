"""`sluice bench limits`: what the governance stage adds to a call, in-process.

One call = admission (every scope checked and reserved) + settlement, with a trivial
upstream. Memory counters always; Redis counters when `--redis URL` is given (one client,
calls in sequence, so the number is one round trip per admission and one per settlement).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

from sluice.cost.prices import Price
from sluice.governance.counters import CounterBackend, MemoryCounters
from sluice.governance.limits_config import BudgetsConfig, LimitsConfig
from sluice.governance.spec import Budget, Identity, RateLimits
from sluice.governance.stage import GovernanceStage
from sluice.pipeline.context import CallContext, Result
from sluice.types import CallMeta, ChatRequest, ChatResponse, Message, TextPart, Usage

_PRICE = Price(Decimal("0.15"), Decimal("0.6"), Decimal("0.075"), Decimal("0.15"))
_CONFIG = LimitsConfig(
    enabled=True,
    gateway=RateLimits(rpm=10**9, tpm=10**12),
    users={"*": RateLimits(rpm=10**9)},
    budgets=BudgetsConfig(tenants={"*": [Budget(period="monthly", usd=10**6)]}),
)


async def _answer(ctx: CallContext) -> Result:
    ctx.usage = Usage(20, 10)
    ctx.cost_usd = Decimal("0.0000090")
    return ChatResponse("r", ctx.request.model, [TextPart("ok")])


def _ctx() -> CallContext:
    ident = Identity(key_id="k1", tenant="acme", limits=RateLimits(rpm=10**9, tpm=10**12))
    meta = CallMeta(user="alice")
    msgs = [Message("user", [TextPart("What is a sluice gate for? " * 4)])]
    return CallContext(ChatRequest("gpt-4o-mini", msgs, max_tokens=64, meta=meta), identity=ident)


async def _measure(backend: CounterBackend, n: int) -> float:
    stage = GovernanceStage(_CONFIG, backend, lambda _: _PRICE)
    for _ in range(50):
        await stage(_ctx(), _answer)
    contexts = [_ctx() for _ in range(n)]
    started = time.perf_counter()
    for ctx in contexts:
        await stage(ctx, _answer)
    return (time.perf_counter() - started) / n * 1e6


async def _run(count: int, redis_url: str | None) -> str:
    lines = [
        "governance stage per call (admit + settle; 5 rate checks + 1 budget), "
        f"{count} calls in sequence:"
    ]
    lines.append(f"  memory counters: {await _measure(MemoryCounters(), count):.1f} µs")
    if redis_url:
        from sluice.governance.redis_counters import RedisCounters

        prefix = f"sluice-bench:{uuid.uuid4().hex}:"
        counters = RedisCounters(redis_url, prefix, timeout_s=2.0)
        try:
            micros = await _measure(counters, count)
        finally:
            await counters.clear()
            await counters.close()
        lines.append(f"  redis counters:  {micros:.1f} µs")
    return "\n".join(lines)


def run(count: int, redis_url: str | None) -> str:
    return asyncio.run(_run(count, redis_url))
