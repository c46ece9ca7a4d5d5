"""The dashboard's summary counts cache hits per tier (exact, normalized, semantic, stale)."""

from __future__ import annotations

from sluice.observe.records import CallRecord
from sluice.web.ui.data import summary


def test_hits_are_counted_per_tier() -> None:
    statuses = ["miss", "exact", "normalized", "normalized", "semantic", "bypass", None]
    calls = [CallRecord(request_id=f"r{i}", cache_status=s) for i, s in enumerate(statuses)]  # type: ignore[arg-type]
    out = summary(calls)
    assert out["cache_hits"] == 4
    assert out["cache_hits_by_tier"] == {"exact": 1, "normalized": 2, "semantic": 1, "stale": 0}
