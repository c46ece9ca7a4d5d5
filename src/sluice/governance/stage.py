"""Governance stage: rate limits and budgets around the rest of the pipeline.

Admission reserves the worst case — estimated input tokens plus `max_tokens` (or the
configured default), priced at the first deployment that serves the model — against every
applicable rate limit and budget in one atomic step. Settlement, when the answer is complete
(streams: when they end, however they end), replaces the reservation with the real usage and
cost, and queues a spend-ledger row. Every answer carries OpenAI's `x-ratelimit-*` headers
for the tightest limit of each unit.

When the counter store is unreachable, limits fail open and hard budgets fail closed (503) by
default; both are configurable. Never a 500.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sluice.collect import WatchedStream
from sluice.cost.compute import compute_cost
from sluice.cost.prices import Price
from sluice.errors import RateLimitError, ServiceUnavailableError
from sluice.governance.counters import (
    NANO,
    Admission,
    BudgetCheck,
    BudgetState,
    CounterBackend,
    CounterBackendError,
    RateCheck,
    Settlement,
)
from sluice.governance.ledger import Ledger, LedgerRow
from sluice.governance.limits_config import LimitsConfig
from sluice.governance.scopes import Who, budget_checks, rate_checks
from sluice.governance.spec import Identity
from sluice.observe.metrics import Metrics
from sluice.observe.rows import bounded
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.tokens import estimate_request_tokens
from sluice.types import CallMeta, ChatResponse, Usage

log = logging.getLogger("sluice.limits")

DOWNGRADE_HEADER = "x-sluice-budget-downgrade"
_LOUD_EVERY_S = 10.0  # backend-error log lines at most this often (the metric counts all)


class BudgetExceededError(RateLimitError):
    default_code = "budget_exceeded"


class GovernanceStage:
    def __init__(
        self,
        config: LimitsConfig,
        backend: CounterBackend,
        price_of_model: Callable[[str], Price | None],
        *,
        models: Collection[str] = (),
        ledger: Ledger | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.backend = backend
        self.ledger = ledger
        self.metrics = metrics
        self._price_of_model = price_of_model
        self._models = frozenset(models)
        self._clock = clock
        self._last_loud = -math.inf

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        req = ctx.request
        who = Who.of(ctx.identity, req.meta)
        estimated = estimate_request_tokens(req)
        worst = Usage(estimated, req.max_tokens or self.config.default_output_tokens)
        usd = compute_cost(worst, self._price_of_model(req.model))
        usd_nano = int(usd * NANO) if usd is not None else 0
        rates = rate_checks(who, self.config, worst.total_tokens)
        budgets = budget_checks(who, self.config, self._clock(), worst.total_tokens, usd_nano)
        if not rates and not budgets:
            return await self._run_and_record(ctx, nxt, None)
        ticket = uuid.uuid4().hex
        try:
            admission = await self.backend.admit(
                ticket, rates, budgets, self.config.budgets.reservation_ttl_s
            )
        except CounterBackendError as exc:
            self._backend_error("admit", exc)
            self._refuse_if_closed(rates, budgets)
            self._decision("unmetered")
            return await self._run_and_record(ctx, nxt, None)
        ctx.response_headers.update(ratelimit_headers(rates, admission))
        if not admission.admitted:
            raise self._refusal(rates, budgets, admission)
        self._decision("admitted")
        self._soft_limits(ctx, budgets, admission)
        return await self._run_and_record(ctx, nxt, (ticket, rates, budgets, usd_nano))

    # --- admission --------------------------------------------------------------------------

    def _refuse_if_closed(self, rates: Sequence[RateCheck], budgets: Sequence[BudgetCheck]) -> None:
        hard = any(b.hard for b in budgets)
        if hard and self.config.budgets.on_backend_error == "closed":
            self._decision("refused_backend_down")
            raise ServiceUnavailableError(
                "spend budgets cannot be checked right now (counter store unreachable); "
                "retry shortly",
                code="budget_store_unavailable",
                headers={"retry-after": "1"},
            )
        if rates and self.config.on_backend_error == "closed":
            self._decision("refused_backend_down")
            raise ServiceUnavailableError(
                "rate limits cannot be checked right now (counter store unreachable); "
                "retry shortly",
                code="rate_limit_store_unavailable",
                headers={"retry-after": "1"},
            )

    def _refusal(
        self, rates: Sequence[RateCheck], budgets: Sequence[BudgetCheck], adm: Admission
    ) -> RateLimitError:
        if adm.failed_rate is not None:
            check, state = rates[adm.failed_rate], adm.rates[adm.failed_rate]
            self._decision("rate_limited", check.scope)
            wait = max(adm.retry_after_s, 0.001)
            headers = {
                "retry-after": str(math.ceil(wait)),
                "retry-after-ms": str(math.ceil(wait * 1000)),
            }
            if check.cost > check.limit:
                message = (
                    f"request too large for the {check.scope} limit: it needs {check.cost} "
                    f"{check.unit}, the limit is {check.limit} {check.unit} per minute"
                )
            else:
                message = (
                    f"rate limit reached for {check.scope}: {check.limit} {check.unit} per "
                    f"minute, {state.used} used; this request needs {check.cost}. "
                    f"Retry in {format_duration(wait)}."
                )
            return RateLimitError(message, headers=headers)
        index = adm.failed_budget if adm.failed_budget is not None else 0
        return self._budget_refusal(budgets[index], adm.budgets[index])

    def _budget_refusal(self, check: BudgetCheck, bstate: BudgetState) -> RateLimitError:
        self._decision("budget_exceeded", check.scope)
        headers = {"x-sluice-budget-scope": check.scope, "x-sluice-budget-period": check.period}
        resets = "never (a total budget)"
        if check.resets_at is not None:
            resets = datetime.fromtimestamp(check.resets_at, UTC).isoformat()
            headers["x-sluice-budget-reset"] = resets
            headers["retry-after"] = str(max(math.ceil(check.resets_at - self._clock()), 1))
        message = (
            f"{check.period} budget exceeded for {check.scope}: "
            f"{_amount(check.limit, check.unit)}; "
            f"spent {_amount(bstate.spent, check.unit)}, reserved by calls in flight "
            f"{_amount(bstate.reserved, check.unit)}, this request may use up to "
            f"{_amount(check.amount, check.unit)}. The budget resets at {resets}."
        )
        return BudgetExceededError(message, headers=headers)

    def _soft_limits(
        self, ctx: CallContext, budgets: Sequence[BudgetCheck], adm: Admission
    ) -> None:
        for check, state in zip(budgets, adm.budgets, strict=True):
            if check.hard or state.spent + state.reserved <= check.limit:
                continue
            self._decision("soft_exceeded", check.scope)
            ctx.over_soft_budget = True  # budget-aware routes now pick their cheapest target
            log.warning(
                "soft %s budget over for %s: %s of %s (request %s)",
                check.period,
                check.scope,
                _amount(state.spent + state.reserved, check.unit),
                _amount(check.limit, check.unit),
                ctx.request.meta.request_id,
            )
            target = check.downgrade_to
            req = ctx.request
            if target and target != req.model and DOWNGRADE_HEADER not in ctx.response_headers:
                if self._models and target not in self._models:
                    log.error(
                        "budget downgrade_to %r is not a served model; not downgraded", target
                    )
                    continue
                if not ctx.identity.allows(target):
                    continue  # the key may not use the cheaper model: stay on the asked one
                ctx.response_headers[DOWNGRADE_HEADER] = f"{req.model} -> {target}"
                req.meta.metadata["sluice_downgraded_from"] = req.model
                ctx.rewrite(dataclasses.replace(req, model=target), "budgets: soft downgrade")
                self._decision("downgraded", check.scope)

    # --- settlement -------------------------------------------------------------------------

    async def _run_and_record(
        self,
        ctx: CallContext,
        nxt: Handler,
        admitted: tuple[str, list[RateCheck], list[BudgetCheck], int] | None,
    ) -> Result:
        if admitted is None and self.ledger is None:
            return await nxt(ctx)
        try:
            result = await nxt(ctx)
        except BaseException:
            await self._settle(ctx, admitted)
            raise
        if isinstance(result, ChatResponse):
            await self._settle(ctx, admitted)
            return result

        async def at_end(_resp: ChatResponse, _completed: bool) -> None:
            await self._settle(ctx, admitted)

        return WatchedStream(result, at_end)

    async def _settle(
        self,
        ctx: CallContext,
        admitted: tuple[str, list[RateCheck], list[BudgetCheck], int] | None,
    ) -> None:
        tokens = ctx.usage.total_tokens
        if self.ledger is not None:
            row = LedgerRow.of(ctx, self._clock())
            if ctx.hold_charge is not None:  # written with the item's result, exactly once
                ctx.hold_charge.append(row)
            else:
                self.ledger.add(row)
        if admitted is None:
            return
        ticket, rates, budgets, reserved_nano = admitted
        usd_nano = int(ctx.cost_usd * NANO) if ctx.cost_usd is not None else None
        if usd_nano is None and ctx.cost_known is False:
            usd_nano = reserved_nano  # unknown price: keep the worst case rather than $0
        settlement = Settlement(
            rate_costs=[(c.key, tokens) for c in rates if c.unit == "tokens"],
            budget_amounts=[
                (b.key, (usd_nano or 0) if b.unit == "usd" else tokens, b.resets_at)
                for b in budgets
            ],
        )
        try:
            spent = await self.backend.settle(ticket, settlement)
        except CounterBackendError as exc:
            self._backend_error("settle", exc)  # the reservation expires on its own
            return
        if self.metrics is not None:
            for check, total in zip(budgets, spent, strict=False):
                label = f"{check.scope}:{check.unit}:{check.period}"
                self.metrics.set_budget_utilisation(label, total / check.limit)

    def ledger_row(
        self,
        identity: Identity,
        *,
        request_id: str,
        model: str,
        deployment: str | None,
        usage: Usage,
        cost_usd: Decimal | None,
        meta: CallMeta | None = None,
    ) -> LedgerRow | None:
        """The spend-ledger row of a call that did not pass through this stage (None: no
        ledger is kept)."""
        if self.ledger is None:
            return None
        meta = meta or CallMeta(request_id=request_id)
        return LedgerRow(
            ts=self._clock(),
            request_id=bounded(request_id, 128),
            tenant=bounded(identity.tenant),
            key_id=identity.key_id,
            team=_bounded_or_none(identity.team),
            user_id=_bounded_or_none(meta.user or identity.user),
            feature=_bounded_or_none(meta.feature),
            model=bounded(model),
            deployment=deployment,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost_usd,
        )

    async def charge(
        self,
        identity: Identity,
        *,
        request_id: str,
        model: str,
        deployment: str | None,
        usage: Usage,
        cost_usd: Decimal | None,
        meta: CallMeta | None = None,
        ledger: bool = True,
    ) -> None:
        """Settle a call that did not pass through this stage: a forwarded batch item, run
        by the provider's own batch API. It was admitted at no budget (a caller under a
        budget runs its batches through the pipeline instead), so there is no reservation
        to replace: the real usage goes to the spend ledger, as any call's (`ledger=False`:
        the caller writes `ledger_row` itself, with the item's result), and to the
        counters of the budgets that apply to the caller now (one given to the key while
        the provider ran the batch counts it). Token rate limits are per minute of
        admission and are left alone. Call it once per item (the caller makes sure)."""
        meta = meta or CallMeta(request_id=request_id)
        now = self._clock()
        row = self.ledger_row(
            identity,
            request_id=request_id,
            model=model,
            deployment=deployment,
            usage=usage,
            cost_usd=cost_usd,
            meta=meta,
        )
        if ledger and row is not None and self.ledger is not None:
            self.ledger.add(row)
        who = Who.of(identity, meta)
        tokens = usage.total_tokens
        if cost_usd is None:  # no price for it: the model's list price rather than $0
            cost_usd = compute_cost(usage, self._price_of_model(model))
        usd_nano = int(cost_usd * NANO) if cost_usd is not None else 0
        budgets = budget_checks(who, self.config, now, tokens, usd_nano)
        if not budgets:
            return
        settlement = Settlement(
            rate_costs=[],
            budget_amounts=[
                (b.key, usd_nano if b.unit == "usd" else tokens, b.resets_at) for b in budgets
            ],
        )
        try:  # a fresh ticket: nothing reserved, the amounts are added to what was spent
            spent = await self.backend.settle(uuid.uuid4().hex, settlement)
        except CounterBackendError as exc:
            self._backend_error("settle", exc)  # the ledger row still records it
            return
        if self.metrics is not None:
            for check, total in zip(budgets, spent, strict=False):
                label = f"{check.scope}:{check.unit}:{check.period}"
                self.metrics.set_budget_utilisation(label, total / check.limit)

    # --- usage ------------------------------------------------------------------------------

    async def usage(self, identity: Identity, meta: CallMeta | None = None) -> dict[str, Any]:
        """What `GET /v1/sluice/usage` answers: this caller's limits and budgets, used and left."""
        who = Who.of(identity, meta or CallMeta())
        now = self._clock()
        rates = rate_checks(who, self.config, 0)
        budgets = budget_checks(who, self.config, now, 0, 0)
        state = await self.backend.read(rates, budgets)
        return {
            "tenant": who.tenant,
            "key_id": who.key_id,
            "limits": [
                {
                    "scope": c.scope,
                    "unit": c.unit,
                    "per": "minute",
                    "limit": c.limit,
                    "used": s.used,
                    "remaining": max(c.limit - s.used, 0),
                    "reset_s": round(s.reset_s, 3),
                }
                for c, s in zip(rates, state.rates, strict=True)
            ],
            "budgets": [
                {
                    "scope": c.scope,
                    "period": c.period,
                    "unit": c.unit,
                    "kind": "hard" if c.hard else "soft",
                    "limit": _value(c.limit, c.unit),
                    "spent": _value(s.spent, c.unit),
                    "reserved": _value(s.reserved, c.unit),
                    "remaining": _value(max(c.limit - s.spent - s.reserved, 0), c.unit),
                    "utilisation": round(s.spent / c.limit, 6),
                    "resets_at": datetime.fromtimestamp(c.resets_at, UTC).isoformat()
                    if c.resets_at is not None
                    else None,
                }
                for c, s in zip(budgets, state.budgets, strict=True)
            ],
        }

    async def close(self) -> None:
        if self.ledger is not None:
            await self.ledger.close()
        await self.backend.close()

    # --- signals ----------------------------------------------------------------------------

    def _decision(self, decision: str, scope: str = "") -> None:
        if self.metrics is not None:
            self.metrics.limit_decision(decision, scope.split(":", 1)[0] or "all")

    def _backend_error(self, op: str, exc: CounterBackendError) -> None:
        if self.metrics is not None:
            self.metrics.governance_backend_error(op)
        now = time.monotonic()
        if now - self._last_loud >= _LOUD_EVERY_S:
            self._last_loud = now
            log.error("limits/budgets counter store failed on %s: %s", op, exc)


def ratelimit_headers(rates: Sequence[RateCheck], adm: Admission) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers for the tightest limit of each unit."""
    headers: dict[str, str] = {}
    for unit in ("requests", "tokens"):
        pairs = [(c, s) for c, s in zip(rates, adm.rates, strict=True) if c.unit == unit]
        if not pairs:
            continue
        check, state = min(pairs, key=lambda p: p[0].limit - p[1].used)
        headers[f"x-ratelimit-limit-{unit}"] = str(check.limit)
        headers[f"x-ratelimit-remaining-{unit}"] = str(max(check.limit - state.used, 0))
        headers[f"x-ratelimit-reset-{unit}"] = format_duration(state.reset_s)
    return headers


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(round(seconds * 1000), 0)}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{int(rest)}s"


def _bounded_or_none(text: str | None) -> str | None:
    return None if text is None else bounded(text)


def _value(amount: int, unit: str) -> float | int:
    return round(amount / NANO, 9) if unit == "usd" else amount


def _amount(amount: int, unit: str) -> str:
    return f"${Decimal(amount) / NANO:.6f}" if unit == "usd" else f"{amount} tokens"


def build_governance(
    config: LimitsConfig,
    price_of_model: Callable[[str], Price | None],
    models: Collection[str],
    metrics: Metrics | None = None,
) -> GovernanceStage:
    """The stage with the configured counter backend and ledger."""
    backend: CounterBackend
    if config.backend == "redis":
        from sluice.governance.redis_counters import RedisCounters

        backend = RedisCounters(
            config.redis_url,
            config.key_prefix,
            timeout_s=config.backend_timeout_s,
            lease_s=config.budgets.reservation_lease_s,
        )
    else:
        from sluice.governance.counters import MemoryCounters

        backend = MemoryCounters()
    parked = metrics.dead_lettered("ledger") if metrics is not None else None
    ledger = Ledger(config.ledger, on_dead_letter=parked) if config.ledger.store_url else None
    return GovernanceStage(
        config, backend, price_of_model, models=models, ledger=ledger, metrics=metrics
    )
