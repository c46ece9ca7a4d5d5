"""Prometheus metrics for one gateway, in its own `CollectorRegistry`.

No metric is registered globally, so several gateways (or tests) in one process never
clash. `observe(record)` updates everything a finished call tells (one `kind="call"`
record; attempt records are ignored); the setters cover state that is not a call: circuit
breakers, in-flight requests, queue depth, budgets, dropped records and routing savings.

Labels stay bounded: no user, key, session or model-requested labels (those are client
input); route and deployment come from config, and each label keeps at most
`max_label_values` distinct values — later ones are counted under `_other`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from sluice.observe.records import CallRecord
from sluice.reliability.breaker import BreakerStateName as BreakerState

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Seconds; LLM calls take from tens of milliseconds (cache hits) to minutes (long outputs).
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
OTHER = "_other"

_BREAKER_VALUES: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}
SavingReason = Literal["cache", "routing", "prompt_cache"]


class Metrics:
    def __init__(self, *, max_label_values: int = 200) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._max_values = max_label_values
        self._seen: dict[str, set[str]] = {}
        self._series: dict[tuple[str, str], _Series] = {}
        self._prompt_cache: dict[str, list[int]] = {}  # deployment → [read, write] tokens
        r = self.registry
        self.requests = Counter(
            "sluice_requests",
            "Calls answered, by route, serving deployment and HTTP status.",
            ["route", "deployment", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "sluice_request_latency_seconds",
            "Time from request to the end of the answer.",
            ["route"],
            buckets=LLM_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "sluice_ttft_seconds",
            "Time from request to the first byte of the answer.",
            ["route"],
            buckets=LLM_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "sluice_tokens",
            "Tokens by type (input counts all prompt tokens, cache reads and writes included).",
            ["route", "deployment", "type"],
            registry=r,
        )
        self.cost = Counter(
            "sluice_cost_usd", "Spend in USD at list price.", ["route", "deployment"], registry=r
        )
        self.cost_saved = Counter(
            "sluice_cost_saved_usd", "USD saved, by reason.", ["reason"], registry=r
        )
        self.cache_hits = Counter(
            "sluice_cache_hits", "Calls answered from Sluice's cache.", ["kind"], registry=r
        )
        self.retries = Counter(
            "sluice_retries", "Upstream attempts beyond the first.", ["deployment"], registry=r
        )
        self.fallbacks = Counter(
            "sluice_fallbacks",
            "Calls that fell back to another deployment.",
            ["route"],
            registry=r,
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
        self.prompt_cache_hit_ratio = Gauge(
            "sluice_prompt_cache_hit_ratio",
            "Provider prompt cache: read tokens / (read + write tokens), since start.",
            ["deployment"],
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

    def _label(self, name: str, value: str | None) -> str:
        value = value or ""
        seen = self._seen.setdefault(name, set())
        if value in seen:
            return value
        if len(seen) >= self._max_values:
            return OTHER
        seen.add(value)
        return value

    def _series_for(self, route: str | None, deployment: str | None) -> _Series:
        key = (self._label("route", route), self._label("deployment", deployment))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(self, *key)
        return series

    # --- per call --------------------------------------------------------------------------

    def observe(self, record: CallRecord) -> None:
        """Count one finished call; attempt records are ignored."""
        if record.kind != "call":
            return
        series = self._series_for(record.route, record.deployment)
        series.requests(record.status).inc()
        series.latency.observe(record.latency_ms / 1000)
        if record.ttft_ms is not None:
            series.ttft.observe(record.ttft_ms / 1000)
        if record.input_tokens:
            series.tokens_input.inc(record.input_tokens)
        if record.output_tokens:
            series.tokens_output.inc(record.output_tokens)
        if record.cost_usd:
            series.cost.inc(float(record.cost_usd))
        if record.cache_hit:
            self.cache_hits.labels(record.cache_status).inc()
        if record.cost_saved_usd is not None and record.cost_saved_usd > 0:
            self.add_saving("cache" if record.cache_hit else "prompt_cache", record.cost_saved_usd)
        if record.attempts > 1:
            series.retries.inc(record.attempts - 1)
        if record.fallback_triggered:
            series.fallbacks.inc()
        if record.cache_read_tokens or record.cache_write_tokens:
            series.prompt_cache(record.cache_read_tokens, record.cache_write_tokens)

    # --- state that is not a call ----------------------------------------------------------

    def add_saving(self, reason: SavingReason, usd: Decimal | float) -> None:
        """Count a saving; `observe` does this for cache and prompt-cache savings already."""
        if usd > 0:
            self.cost_saved.labels(reason).inc(float(usd))

    def set_breaker_state(self, deployment: str, state: BreakerState) -> None:
        self.breaker_state.labels(self._label("deployment", deployment)).set(_BREAKER_VALUES[state])

    def set_budget_utilisation(self, scope: str, fraction: float) -> None:
        self.budget_utilisation.labels(self._label("scope", scope)).set(fraction)

    def set_token_estimate_ratio(self, model: str, ratio: float) -> None:
        self.token_estimate_ratio.labels(self._label("model", model)).set(ratio)

    def record_dropped(self) -> None:
        """Fits `RecordSink(on_drop=...)`."""
        self.records_dropped.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition; serve it with `CONTENT_TYPE`."""
        return generate_latest(self.registry)


class _Series:
    """The labelled children one (route, deployment) pair updates, resolved once:
    `labels()` costs about a microsecond per call, a dict lookup does not."""

    __slots__ = (
        "_by_status",
        "_cache_children",
        "_metrics",
        "_prompt_cache",
        "cost",
        "deployment",
        "fallbacks",
        "latency",
        "retries",
        "route",
        "tokens_input",
        "tokens_output",
        "ttft",
    )

    def __init__(self, metrics: Metrics, route: str, deployment: str) -> None:
        self._metrics = metrics
        self.route, self.deployment = route, deployment
        self._by_status: dict[int, Counter] = {}
        self.latency = metrics.latency.labels(route)
        self.ttft = metrics.ttft.labels(route)
        self.tokens_input = metrics.tokens.labels(route, deployment, "input")
        self.tokens_output = metrics.tokens.labels(route, deployment, "output")
        self.cost = metrics.cost.labels(route, deployment)
        self.retries = metrics.retries.labels(deployment)
        self.fallbacks = metrics.fallbacks.labels(route)
        self._prompt_cache = metrics._prompt_cache.setdefault(deployment, [0, 0])
        self._cache_children: tuple[Counter, Counter, Gauge] | None = None

    def requests(self, status: int) -> Counter:
        child = self._by_status.get(status)
        if child is None:
            child = self._metrics.requests.labels(self.route, self.deployment, str(status))
            self._by_status[status] = child
        return child

    def prompt_cache(self, read: int, write: int) -> None:
        if self._cache_children is None:
            tokens = self._metrics.tokens
            self._cache_children = (
                tokens.labels(self.route, self.deployment, "cache_read"),
                tokens.labels(self.route, self.deployment, "cache_write"),
                self._metrics.prompt_cache_hit_ratio.labels(self.deployment),
            )
        read_tokens, write_tokens, ratio = self._cache_children
        if read:
            read_tokens.inc(read)
        if write:
            write_tokens.inc(write)
        totals = self._prompt_cache
        totals[0] += read
        totals[1] += write
        ratio.set(totals[0] / (totals[0] + totals[1]))
