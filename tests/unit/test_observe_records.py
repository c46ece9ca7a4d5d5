"""CallRecord: the exact field set, JSON round trip, immutability."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sluice.observe.records import FIELD_NAMES, CallRecord, prompt_hash

EXPECTED_FIELDS = [
    *("request_id", "parent_request_id", "attempt_of", "kind", "trace_id", "ts"),
    *("tenant", "key_id", "user_id", "feature", "session"),
    *("route", "model_requested", "deployment", "provider", "upstream_model"),
    *("attempts", "fallback_triggered", "cache_status", "cache_similarity"),
    *("cache_score", "cache_decision", "stream"),
    *("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"),
    *("cost_usd", "cost_saved_usd", "usage_source", "latency_ms", "ttft_ms", "finish_reason"),
    "status",
    *("error_type", "system_prompt_hash", "input_preview", "output_preview"),
    *("route_decision", "routing_saved_usd", "guards"),
    *("retrieval_tokens", "retrieval_cost_usd", "retrieval_sources", "grounded"),
]


def full_record() -> CallRecord:
    return CallRecord(
        request_id="req-1",
        parent_request_id="req-0",
        attempt_of=None,
        kind="call",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        ts=1_763_900_000.25,
        tenant="acme",
        key_id="key-7",
        user_id="u-42",
        feature="search",
        session="s-1",
        route="chat",
        model_requested="claude-haiku",
        deployment="anthropic-haiku",
        provider="anthropic",
        upstream_model="claude-haiku-4-5",
        attempts=2,
        fallback_triggered=True,
        cache_status="semantic",
        cache_similarity=0.97,
        cache_score=0.951,
        cache_decision="SERVE (semantic), cosine 0.970, verifier 0.951, threshold 0.918",
        stream=True,
        input_tokens=1150,
        output_tokens=120,
        cache_read_tokens=800,
        cache_write_tokens=0,
        cost_usd=Decimal("0.00103"),
        cost_saved_usd=Decimal("0.00072"),
        latency_ms=812.5,
        ttft_ms=120.0,
        finish_reason="stop",
        status=200,
        error_type=None,
        system_prompt_hash=prompt_hash("You are helpful."),
        input_preview="hi",
        output_preview="hello",
        route_decision="rules: task=extraction -> claude-haiku",
        routing_saved_usd=Decimal("0.0031"),
        retrieval_tokens=640,
        retrieval_cost_usd=Decimal("0.000096"),
        retrieval_sources=5,
        grounded="unsupported:1",
    )


def test_fields_are_exactly_the_agreed_set() -> None:
    assert list(FIELD_NAMES) == EXPECTED_FIELDS


def test_slotted() -> None:
    record = full_record()
    assert not hasattr(record, "__dict__")
    with pytest.raises(AttributeError):
        record.not_a_field = 1  # type: ignore[attr-defined]


def test_to_json_is_json_safe_and_round_trips() -> None:
    record = full_record()
    data = record.to_json()
    assert data["cost_usd"] == "0.00103" and data["cost_saved_usd"] == "0.00072"
    text = json.dumps(data)
    back = CallRecord.from_json(json.loads(text))
    assert back == record
    assert isinstance(back.cost_usd, Decimal)


def test_none_costs_round_trip() -> None:
    record = CallRecord(request_id="r", ts=1.0)
    data = record.to_json()
    assert data["cost_usd"] is None
    assert CallRecord.from_json(data) == record


def test_from_json_ignores_unknown_and_defaults_missing() -> None:
    back = CallRecord.from_json({"request_id": "r", "ts": 2.0, "cost_usd": 0.5, "new_field": 1})
    assert back.cost_usd == Decimal("0.5")
    assert back.kind == "call" and back.status == 200 and back.attempts == 1


def test_helpers() -> None:
    assert full_record().cache_hit
    assert not CallRecord(request_id="r", cache_status="miss").cache_hit
    assert CallRecord(request_id="r", status=429).is_error
    assert not CallRecord(request_id="r", status=200).is_error
    assert prompt_hash("a") == prompt_hash("a") != prompt_hash("b")
    assert len(prompt_hash("a")) == 16
