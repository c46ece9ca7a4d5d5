"""Issue 14 §3/§4 with DEFAULT reliability settings: 30% faults of every kind on both the
primary and its fallback, half the requests streamed, concurrency 24 (`sluice bench chaos`
runs the full 2,000; the suite runs a smaller count)."""

from __future__ import annotations

import pytest

from sluice.bench.chaos import run_chaos

pytestmark = pytest.mark.chaos


async def test_thirty_percent_faults_stay_below_one_percent_failures() -> None:
    result = await run_chaos(requests=400, concurrency=24, hang_s=1.0)
    print("\n" + result.summary())
    assert result.requests == 400
    assert result.failure_share <= 0.01, result.summary()
    assert result.truncated_success == 0, result.summary()
    assert result.attempts_per_request <= 1.6, result.summary()
    # Streams cut after the first byte (cut, malformed) were continued elsewhere.
    # Cuts are random (a share of the faults): when some happened, most were continued.
    assert result.cut == 0 or result.seamless_share >= 0.8, result.summary()
