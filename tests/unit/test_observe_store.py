"""RecordStore on SQLite: round trip, time-range queries, aggregates, atomic batches."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from sluice.observe.records import CallRecord
from sluice.observe.store import RecordStore, percentile


@pytest.fixture(params=["memory", "file"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordStore]:
    url = "sqlite://" if request.param == "memory" else f"sqlite:///{tmp_path / 'calls.db'}"
    s = RecordStore.open(url)
    yield s
    s.close()


def call(i: int, **kw: object) -> CallRecord:
    fields: dict[str, object] = {
        "request_id": f"r{i}",
        "ts": 1000.0 + i,
        "user_id": f"u{i % 2}",
        "route": "chat",
        "model_requested": "gpt-4o-mini",
        "deployment": "openai-mini",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": Decimal("0.0000210000"),
        "latency_ms": float(10 * (i + 1)),
        "ttft_ms": float(i + 1),
    }
    fields.update(kw)
    return CallRecord(**fields)  # type: ignore[arg-type]


def test_schema_has_a_column_per_field_and_the_indexes(store: RecordStore) -> None:
    inspector = inspect(store.engine)
    columns = {c["name"] for c in inspector.get_columns("call_records")}
    assert columns == {"id", *CallRecord.__dataclass_fields__}
    indexed = {tuple(ix["column_names"]) for ix in inspector.get_indexes("call_records")}
    # Only what queries use: the time range and lookups by request id (each index costs
    # every insert; grouping happens after the time filter).
    assert indexed == {("ts",), ("request_id",)}


def test_round_trip_and_time_range(store: RecordStore) -> None:
    records = [call(i, cost_saved_usd=Decimal("0.0000000001") * i) for i in range(10)]
    records[3] = call(3, cost_usd=None, cache_status="exact", input_preview="hi [email]")
    store.write_batch(records[:5])
    store.write_batch(records[5:])
    assert store.query() == records
    assert store.query(since=1002, until=1005) == records[2:5]
    assert store.query(limit=3) == records[:3]
    assert store.query(limit=2, newest_first=True) == [records[9], records[8]]
    assert store.query(since=5000) == []


def test_money_is_exact(store: RecordStore) -> None:
    tiny = Decimal("0.0000000001")
    store.write_batch([call(i, cost_usd=tiny, cost_saved_usd=tiny) for i in range(3)])
    [group] = store.aggregate(None, "route")
    assert group["cost_usd"] == Decimal("0.0000000003")
    assert store.query()[0].cost_usd == tiny


def test_batch_is_one_transaction(store: RecordStore) -> None:
    bad = call(2, request_id=None)  # NOT NULL violation
    with pytest.raises(IntegrityError):
        store.write_batch([call(1), bad])
    assert store.query() == []


def test_aggregate(store: RecordStore) -> None:
    records = [
        call(0, user_id="a", status=200, cache_status="exact", cost_saved_usd=Decimal("0.5")),
        call(1, user_id="a", status=500, error_type="upstream", cost_usd=None),
        call(2, user_id="a", status=200, cache_status="miss", cache_read_tokens=40),
        call(3, user_id="b", status=429, cache_status="semantic", ttft_ms=None),
        call(4, user_id=None),
        # attempts never count
        call(5, user_id="a", kind="attempt", attempt_of="r1", input_tokens=10_000, status=502),
    ]
    store.write_batch(records)
    stats = {s["group"]: s for s in store.aggregate(since=None, group_by="user_id")}
    assert list(stats) == ["a", "b", None]
    a = stats["a"]
    assert (a["calls"], a["errors"], a["unpriced_calls"]) == (3, 1, 1)
    assert (a["input_tokens"], a["output_tokens"], a["cache_read_tokens"]) == (300, 30, 40)
    assert a["cost_usd"] == Decimal("0.000042") and a["cost_saved_usd"] == Decimal("0.5")
    assert a["cache_hit_rate"] == pytest.approx(1 / 3)
    assert a["latency_ms_p50"] == 20.0 and a["latency_ms_p99"] == pytest.approx(29.8)
    assert (a["ttft_ms_p50"], a["group_by"]) == (2.0, "user_id")
    b = stats["b"]
    assert (b["calls"], b["errors"], b["cache_hit_rate"]) == (1, 1, 1.0)
    assert b["ttft_ms_p50"] is None and b["latency_ms_p95"] == 40.0
    # time window
    [late] = store.aggregate(since=1003, group_by="route")
    assert late["calls"] == 2


def test_aggregate_by_every_dimension(store: RecordStore) -> None:
    store.write_batch([call(i, tenant="t", feature="f") for i in range(4)])
    for dim in ("user_id", "feature", "model_requested", "route", "tenant", "deployment"):
        groups = store.aggregate(None, dim)
        assert sum(g["calls"] for g in groups) == 4


def test_aggregate_refuses_unknown_dimension(store: RecordStore) -> None:
    with pytest.raises(ValueError, match="cannot group by"):
        store.aggregate(None, "input_preview")  # type: ignore[arg-type]


def test_empty_batch_is_fine(store: RecordStore) -> None:
    store.write_batch([])
    assert store.aggregate(None, "route") == []


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
        ([float(i) for i in range(1, 101)], 95, 95.05),
    ],
)
def test_percentile(values: list[float], q: float, expected: float | None) -> None:
    assert percentile(values, q) == (pytest.approx(expected) if expected is not None else None)
