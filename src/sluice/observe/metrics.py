"""Prometheus metrics for one gateway, in its own `CollectorRegistry`.

No metric is registered globally, so several gateways (or tests) in one process never
clash. `observe(record)` updates everything a finished call tells (one `kind="call"`
record; attempt records are ignored); the setters cover state that is not a call: circuit
breakers, in-flight requests, queue depth, budgets, dropped records and routing savings.

Labels stay bounded: no user, key, session or model-requested labels (those are client
input). Route, deployment and model values come only from config (`allow_values`): a name
the config does not know — an unknown model a caller asked for — is counted as `other`
(200 requests with 100 kB model names once made /metrics 388 MB). Every other label keeps
at most `max_label_values` distinct values of at most 128 characters; later or longer
ones are counted under `_other`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)

from sluice.observe.call_metrics import CallTotals
from sluice.observe.records import CallRecord

if TYPE_CHECKING:  # observe sits beside reliability: the state names are a type only
    from sluice.reliability.breaker import BreakerStateName as BreakerState

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds; LLM calls take from tens of milliseconds (cache hits) to minutes (long outputs).
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
OTHER = "_other"
UNKNOWN = "other"  # a route/deployment/model name the config does not have
_MAX_VALUE_CHARS = 128

_BREAKER_VALUES: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}
SavingReason = Literal["cache", "routing", "prompt_cache"]


class Metrics:
    def __init__(self, *, max_label_values: int = 200) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._max_values = max_label_values
        self._seen: dict[str, set[str]] = {}
        self._allowed: dict[str, frozenset[str]] = {}
        r = self.registry
        # Per-call counters and histograms: plain numbers until scraped (call_metrics.py).
        self.calls = CallTotals(LLM_BUCKETS)
        r.register(self.calls)
        self.cost_saved = Counter(
            "sluice_cost_saved_usd", "USD saved, by reason.", ["reason"], registry=r
        )
        self.routing_overspend = Counter(
            "sluice_routing_overspend_usd",
            "USD routed calls cost above their route's reference model (escalated cascades); "
            "net routing savings = cost_saved{reason=routing} - this.",
            registry=r,
        )
        self.guard_verdicts = Counter(
            "sluice_guard_verdicts",
            "Guard verdicts (pass, flag, mask, block, error), by guard.",
            ["guard", "verdict"],
            registry=r,
        )
        self.cache_hits = Counter(
            "sluice_cache_hits", "Calls answered from Sluice's cache.", ["kind"], registry=r
        )
        self.breaker_state = Gauge(
            "sluice_breaker_state",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["deployment"],
            registry=r,
        )
        self.in_flight = Gauge("sluice_in_flight", "Calls being answered now.", registry=r)
        self.queue_depth = Gauge("sluice_queue_depth", "Calls waiting to be sent.", registry=r)
        self.budget_utilisation = Gauge(
            "sluice_budget_utilisation",
            "Share of a budget spent (1 = all).",
            ["scope"],
            registry=r,
        )
        self.records_dropped = Counter(
            "sluice_records_dropped",
            "Call records dropped because the buffer was full.",
            registry=r,
        )
        self.dead_letters = Counter(
            "sluice_dead_letters",
            "Rows a table refused (too long, a byte the database rejects), parked in "
            "sluice_dead_letters instead of costing their batch, by table.",
            ["table"],
            registry=r,
        )
        self.prompt_cache_hit_ratio = Gauge(
            "sluice_prompt_cache_hit_ratio",
            "Provider prompt cache: read tokens / (read + write tokens), since start.",
            ["deployment"],
            registry=r,
        )
        self.limit_decisions = Counter(
            "sluice_limit_decisions",
            "Rate-limit and budget decisions (admitted, rate_limited, budget_exceeded, "
            "soft_exceeded, downgraded, unmetered, refused_backend_down), by scope kind.",
            ["decision", "scope"],
            registry=r,
        )
        self.governance_backend_errors = Counter(
            "sluice_limits_backend_errors",
            "Failures of the limits/budgets counter store (Redis), by operation.",
            ["op"],
            registry=r,
        )
        self.token_estimate_ratio = Gauge(
            "sluice_token_estimate_ratio",
            "Input tokens the provider reported / Sluice's estimate (EWMA; 1 = exact).",
            ["model"],
            registry=r,
        )
        for reason in ("cache", "routing", "prompt_cache"):
            self.cost_saved.labels(reason)

    def guard_verdict(self, guard: str, verdict: str) -> None:
        """One guard's verdict on one call (sluice.guardrails); guard names are config
        names (built-in, custom, webhook), bounded like every other label."""
        self.guard_verdicts.labels(self._label("guard", guard), verdict).inc()

    def allow_values(self, **names: frozenset[str]) -> None:
        """The only values the given labels take (e.g. `route=...` from config); anything
        else is counted as `other`."""
        self._allowed.update(names)

    def _label(self, name: str, value: str | None) -> str:
        value = value or ""
        allowed = self._allowed.get(name)
        if allowed is not None:
            return value if value in allowed or not value else UNKNOWN
        seen = self._seen.setdefault(name, set())
        if value in seen:
            return value
        if len(seen) >= self._max_values or len(value) > _MAX_VALUE_CHARS:
            return OTHER
        seen.add(value)
        return value

    # --- per call --------------------------------------------------------------------------

    def observe(self, record: CallRecord) -> None:
        """Count one finished call; attempt records are ignored."""
        if record.kind != "call":
            return
        self.calls.add(
            self._label("route", record.route), self._label("deployment", record.deployment), record
        )
        if record.cache_hit:
            self.cache_hits.labels(record.cache_status).inc()
        if record.cost_saved_usd is not None and record.cost_saved_usd > 0:
            self.add_saving("cache" if record.cache_hit else "prompt_cache", record.cost_saved_usd)
        routed = record.routing_saved_usd
        if routed is not None:  # counters only grow: a dearer routed call is counted apart
            if routed > 0:
                self.add_saving("routing", routed)
            elif routed < 0:
                self.routing_overspend.inc(float(-routed))

    # --- state that is not a call ----------------------------------------------------------

    def add_saving(self, reason: SavingReason, usd: Decimal | float) -> None:
        """Count a saving; `observe` does this for cache and prompt-cache savings already."""
        if usd > 0:
            self.cost_saved.labels(reason).inc(float(usd))

    def set_breaker_state(self, deployment: str, state: BreakerState) -> None:
        self.breaker_state.labels(self._label("deployment", deployment)).set(_BREAKER_VALUES[state])

    def set_budget_utilisation(self, scope: str, fraction: float) -> None:
        self.budget_utilisation.labels(self._label("scope", scope)).set(fraction)

    def limit_decision(self, decision: str, scope: str) -> None:
        """`scope` is a scope kind (gateway, key, user, team, tier, tenant, feature, all)."""
        self.limit_decisions.labels(decision, scope).inc()

    def governance_backend_error(self, op: str) -> None:
        self.governance_backend_errors.labels(op).inc()

    def set_token_estimate_ratio(self, model: str, ratio: float) -> None:
        self.token_estimate_ratio.labels(self._label("model", model)).set(ratio)

    def dead_lettered(self, table: str) -> Callable[[int], None]:
        """A callback counting rows parked for `table` (a name from code, not input)."""
        child = self.dead_letters.labels(table)
        return lambda n: child.inc(n)

    def record_dropped(self) -> None:
        """Fits `RecordSink(on_drop=...)`."""
        self.records_dropped.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition; serve it with `CONTENT_TYPE`."""
        for deployment, ratio in self.calls.prompt_cache_ratios().items():
            self.prompt_cache_hit_ratio.labels(deployment).set(ratio)
        return generate_latest(self.registry)
