"""Agent loop guards: calls that share a parent request id (an agent's steps) share a step
counter and a cost accumulator; past `max_steps` or `max_cost_usd` further steps are
refused (403) — the cost circuit breaker for runaway loops.

The cost limit holds like a hard budget: a step reserves its worst case (the input estimate
plus its `max_tokens` at the model's price) and is refused when spent + reserved + that
would pass the limit; the reservation is replaced by the real cost when the step ends. Only
checking before each step let a run spend $1.20 against a $1.00 limit.

State is per gateway process, bounded (least recently used parents are forgotten first)
and expires `ttl_s` after a parent's last step. A parent id is the caller's name for its run,
so runs are keyed by tenant and id: another tenant's `run-42` is a different run, and a
refusal never tells one tenant that another's run exists.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from sluice.collect import WatchedStream
from sluice.config import AgentGuardConfig
from sluice.cost.compute import compute_cost
from sluice.cost.prices import Price
from sluice.errors import PermissionDeniedError
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.tokens import estimate_request_tokens
from sluice.types import ChatResponse, Usage

MAX_TRACKED_PARENTS = 100_000


@dataclass(slots=True)
class _Run:
    steps: int = 0
    cost: Decimal = Decimal(0)
    reserved: Decimal = Decimal(0)  # worst cases of the steps still running
    last_seen: float = 0.0


# Output tokens assumed for a step that sets no max_tokens (as limits.default_output_tokens).
DEFAULT_OUTPUT_TOKENS = 1024


class AgentGuardStage:
    def __init__(
        self,
        config: AgentGuardConfig,
        price_of_model: Callable[[str], Price | None] = lambda model: None,
    ) -> None:
        self._cfg = config
        self._price_of_model = price_of_model
        self._runs: OrderedDict[str, _Run] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._cfg.max_steps is not None or self._cfg.max_cost_usd is not None

    def _run(self, parent: str) -> _Run:
        now = time.monotonic()
        run = self._runs.pop(parent, None)
        if run is None or now - run.last_seen > self._cfg.ttl_s:
            run = _Run()
        run.last_seen = now
        self._runs[parent] = run
        while len(self._runs) > MAX_TRACKED_PARENTS:
            self._runs.popitem(last=False)
        return run

    def snapshot(self, parent: str, tenant: str = "default") -> tuple[int, Decimal] | None:
        run = self._runs.get(_run_key(tenant, parent))
        return (run.steps, run.cost) if run else None

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        meta = ctx.request.meta
        parent = meta.headers.get("x-sluice-parent-request-id") or meta.metadata.get(
            "parent_request_id"
        )
        if not self.enabled or not isinstance(parent, str) or not parent:
            return await nxt(ctx)
        tenant = ctx.identity.tenant
        run = self._run(_run_key(tenant, parent))
        limit_steps, limit_cost = self._cfg.max_steps, self._cfg.max_cost_usd
        if limit_steps is not None and run.steps >= limit_steps:
            raise PermissionDeniedError(
                f"agent loop guard: parent request {parent!r} already made {run.steps} calls "
                f"(limit {limit_steps})",
                code="agent_step_limit",
            )
        worst = self._worst_case(ctx) if limit_cost is not None else Decimal(0)
        if limit_cost is not None and run.cost + run.reserved + worst > Decimal(str(limit_cost)):
            raise PermissionDeniedError(
                f"agent loop guard: parent request {parent!r} already cost ${run.cost:.6f} "
                f"(${run.reserved:.6f} more reserved by running steps); this step could cost "
                f"${worst:.6f} more (limit ${limit_cost})",
                code="agent_cost_limit",
            )
        run.steps += 1
        run.reserved += worst

        def add_cost(cost: Decimal | None) -> None:
            run.cost += cost or Decimal(0)

        def release(*_: object) -> None:
            run.reserved -= worst

        ctx.on_settled.append(add_cost)
        try:
            result = await nxt(ctx)
        except BaseException:
            release()
            raise
        if isinstance(result, ChatResponse):
            release()
            return result

        async def release_at_end(resp: ChatResponse, completed: bool) -> None:
            release()

        return WatchedStream(result, release_at_end)

    def _worst_case(self, ctx: CallContext) -> Decimal:
        """The step's cost if it used all of its max_tokens (0 when the price is unknown)."""
        req = ctx.request
        worst = Usage(estimate_request_tokens(req), req.max_tokens or DEFAULT_OUTPUT_TOKENS)
        return compute_cost(worst, self._price_of_model(req.model)) or Decimal(0)


def _run_key(tenant: str, parent: str) -> str:
    """Runs are the caller's names: scoped by tenant (a NUL cannot occur in a tenant id)."""
    return f"{tenant}\x00{parent}"
