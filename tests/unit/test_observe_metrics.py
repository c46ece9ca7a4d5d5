"""Metrics: one registry per gateway, per-call updates, bounded labels, text exposition."""

from __future__ import annotations

from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from sluice.observe.metrics import CONTENT_TYPE, LLM_BUCKETS, OTHER, Metrics
from sluice.observe.records import CallRecord


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def record(**kw: object) -> CallRecord:
    fields: dict[str, object] = {
        "request_id": "r",
        "route": "chat",
        "deployment": "anthropic-haiku",
        "status": 200,
        "input_tokens": 1150,
        "output_tokens": 120,
        "cache_read_tokens": 800,
        "cache_write_tokens": 200,
        "cost_usd": Decimal("0.00103"),
        "cost_saved_usd": Decimal("0.00072"),
        "latency_ms": 812.0,
        "ttft_ms": 120.0,
    }
    fields.update(kw)
    return CallRecord(**fields)  # type: ignore[arg-type]


def test_observe_updates_per_call_metrics() -> None:
    m = Metrics()
    m.observe(record())
    m.observe(record(status=429, attempts=3, fallback_triggered=True, cost_usd=None))
    labels = {"route": "chat", "deployment": "anthropic-haiku"}
    assert value(m, "sluice_requests_total", status="200", **labels) == 1
    assert value(m, "sluice_requests_total", status="429", **labels) == 1
    assert value(m, "sluice_request_latency_seconds_count", route="chat") == 2
    assert value(m, "sluice_request_latency_seconds_bucket", route="chat", le="1.0") == 2
    assert value(m, "sluice_request_latency_seconds_bucket", route="chat", le="0.5") == 0
    assert value(m, "sluice_ttft_seconds_bucket", route="chat", le="0.25") == 2
    assert value(m, "sluice_tokens_total", type="input", **labels) == 2300
    assert value(m, "sluice_tokens_total", type="cache_read", **labels) == 1600
    assert value(m, "sluice_cost_usd_total", **labels) == 0.00103
    assert value(m, "sluice_cost_saved_usd_total", reason="prompt_cache") == 0.00144
    assert value(m, "sluice_cost_saved_usd_total", reason="cache") == 0
    assert value(m, "sluice_retries_total", deployment="anthropic-haiku") == 2
    assert value(m, "sluice_fallbacks_total", route="chat") == 1
    # 1600 read / (1600 + 400 written)
    assert value(m, "sluice_prompt_cache_hit_ratio", deployment="anthropic-haiku") == 0.8


def test_response_cache_hits() -> None:
    m = Metrics()
    m.observe(record(cache_status="exact", deployment=None, cost_usd=Decimal(0)))
    m.observe(record(cache_status="semantic", cache_similarity=0.96))
    m.observe(record(cache_status="miss"))
    assert value(m, "sluice_cache_hits_total", kind="exact") == 1
    assert value(m, "sluice_cache_hits_total", kind="semantic") == 1
    assert value(m, "sluice_cache_hits_total", kind="miss") is None
    assert value(m, "sluice_cost_saved_usd_total", reason="cache") == 0.00144


def test_attempt_records_are_ignored() -> None:
    m = Metrics()
    m.observe(record(kind="attempt", attempt_of="r0"))
    assert value(m, "sluice_request_latency_seconds_count", route="chat") is None


def test_state_setters() -> None:
    m = Metrics()
    m.set_breaker_state("a", "open")
    m.set_breaker_state("b", "half_open")
    m.set_budget_utilisation("tenant:acme", 0.75)
    m.in_flight.inc()
    m.queue_depth.set(3)
    m.record_dropped()
    m.record_dropped()
    m.add_saving("routing", Decimal("0.25"))
    m.add_saving("routing", Decimal("-1"))  # a dearer route is no saving
    assert value(m, "sluice_breaker_state", deployment="a") == 2
    assert value(m, "sluice_breaker_state", deployment="b") == 1
    assert value(m, "sluice_budget_utilisation", scope="tenant:acme") == 0.75
    assert value(m, "sluice_in_flight") == 1
    assert value(m, "sluice_queue_depth") == 3
    assert value(m, "sluice_records_dropped_total") == 2
    assert value(m, "sluice_cost_saved_usd_total", reason="routing") == 0.25


def test_registries_are_independent() -> None:
    a, b = Metrics(), Metrics()
    a.observe(record())
    assert value(a, "sluice_request_latency_seconds_count", route="chat") == 1
    assert value(b, "sluice_request_latency_seconds_count", route="chat") is None


def test_label_values_are_bounded() -> None:
    m = Metrics(max_label_values=3)
    for i in range(10):
        m.observe(record(route=f"r{i}"))
    routes = {
        dict(labels)["route"]
        for (name, labels) in samples(m)
        if name == "sluice_request_latency_seconds_count"
    }
    assert routes == {"r0", "r1", "r2", OTHER}
    assert value(m, "sluice_request_latency_seconds_count", route=OTHER) == 7


def test_no_user_level_labels() -> None:
    m = Metrics()
    m.observe(record(user_id="u-1", key_id="k", session="s", tenant="t", model_requested="x"))
    text = m.render().decode()
    for leaked in ('"u-1"', '"k"', '"s"', '"x"'):
        assert leaked not in text


def test_render_is_prometheus_text() -> None:
    m = Metrics()
    m.observe(record())
    text = m.render().decode()
    assert "# TYPE sluice_requests_total counter" in text
    assert "# TYPE sluice_request_latency_seconds histogram" in text
    assert CONTENT_TYPE.startswith("text/plain")
    bounds = [
        float(dict(labels)["le"])
        for (name, labels) in samples(m)
        if name == "sluice_ttft_seconds_bucket"
    ]
    assert bounds[:-1] == list(LLM_BUCKETS)


def test_routing_savings_and_overspend() -> None:
    m = Metrics()
    m.observe(record(cost_saved_usd=None, routing_saved_usd=Decimal("0.004")))
    m.observe(record(cost_saved_usd=None, routing_saved_usd=Decimal("-0.001")))
    m.observe(record(cost_saved_usd=None, routing_saved_usd=None))
    assert value(m, "sluice_cost_saved_usd_total", reason="routing") == 0.004
    assert value(m, "sluice_routing_overspend_usd_total") == 0.001
