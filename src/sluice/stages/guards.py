"""Agent loop guards: calls that share a parent request id (an agent's steps) share a step
counter and a cost accumulator; past `max_steps` or `max_cost_usd` further steps are
refused (403) — the cost circuit breaker for runaway loops.

State is per gateway process, bounded (least recently used parents are forgotten first)
and expires `ttl_s` after a parent's last step. A parent id is the caller's name for its run,
so runs are keyed by tenant and id: another tenant's `run-42` is a different run, and a
refusal never tells one tenant that another's run exists.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal

from sluice.config import AgentGuardConfig
from sluice.errors import PermissionDeniedError
from sluice.pipeline.context import CallContext, Handler, Result

MAX_TRACKED_PARENTS = 100_000


@dataclass(slots=True)
class _Run:
    steps: int = 0
    cost: Decimal = Decimal(0)
    last_seen: float = 0.0


class AgentGuardStage:
    def __init__(self, config: AgentGuardConfig) -> None:
        self._cfg = config
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
        if limit_cost is not None and run.cost >= Decimal(str(limit_cost)):
            raise PermissionDeniedError(
                f"agent loop guard: parent request {parent!r} already cost ${run.cost:.6f} "
                f"(limit ${limit_cost})",
                code="agent_cost_limit",
            )
        run.steps += 1

        def add_cost(cost: Decimal | None) -> None:
            run.cost += cost or Decimal(0)

        ctx.on_settled.append(add_cost)
        return await nxt(ctx)


def _run_key(tenant: str, parent: str) -> str:
    """Runs are the caller's names: scoped by tenant (a NUL cannot occur in a tenant id)."""
    return f"{tenant}\x00{parent}"
