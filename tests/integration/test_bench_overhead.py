"""`sluice bench overhead` end to end: real simulator and gateway processes, a tiny load.
Checks the report's shape and that the numbers are measured (no timing assertions)."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from sluice.cli import main

pytestmark = pytest.mark.integration


def test_overhead_reports_throughput_latency_and_gateway_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLUICE_SEMANTIC_CACHE", "false")  # no embedding model to load
    args = ["bench", "overhead", "--concurrency", "4", "--mode", "json", "--requests", "300"]
    result = CliRunner().invoke(main, [*args, "--seconds", "5", "--loadgen", "python"])
    assert result.exit_code == 0, result.output
    assert "records on (SQLite, previews)" in result.output
    assert "gw CPU µs/req" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("json"))
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", row)]
    conc, direct_rps, gateway_rps, cpu_per_request = numbers[0], numbers[1], numbers[4], numbers[-1]
    assert conc == 4
    assert direct_rps > 0 and gateway_rps > 0
    assert 0 < cpu_per_request < 1e6  # measured from /proc, per completed request
    assert "failed requests" not in result.output
