"""`sluice route explain` and `sluice bench routing` on the shipped example, real MiniLM model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sluice.cli import main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "routing.yaml")
DATASET = ROOT / "tests" / "data" / "routing_prompts.jsonl"


def test_explain_shows_each_strategy_and_the_decision_without_a_model_call() -> None:
    result = CliRunner().invoke(
        main, ["route", "explain", "--config", EXAMPLE, "--route", "auto", "Prove that 17 is prime"]
    )
    assert result.exit_code == 0, result.output
    assert "rules:      rules: hard-words -> gpt-4o" in result.output  # what the rule alone says
    assert "learned:    P(strong)=" in result.output
    assert "only where the learned model is unsure" in result.output
    assert "\ndecision: " in result.output
    assert "reference (savings measured against): gpt-4o" in result.output


def test_explain_task_tag() -> None:
    tagged = CliRunner().invoke(
        main,
        ["route", "explain", "--config", EXAMPLE, "--route", "auto", "--task", "math", "hi"],
    )
    assert "decision: rules: tagged-hard -> gpt-4o" in tagged.output


def test_explain_unknown_route_is_a_clear_error() -> None:
    result = CliRunner().invoke(
        main, ["route", "explain", "--config", EXAMPLE, "--route", "nope", "x"]
    )
    assert result.exit_code != 0
    assert "no route named 'nope'" in result.output


def test_bench_routing_reports_accuracy_overhead_and_cost(tmp_path: Path) -> None:
    rows = DATASET.read_text(encoding="utf-8").splitlines()
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(rows[:20] + rows[-20:]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["bench", "routing", "--config", EXAMPLE, "--dataset", str(small), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["rows"] == 40 and out["reference"] == "gpt-4o"
    acc = out["accuracy"]
    assert acc["tune"]["n"] + acc["held-out"]["n"] == 40
    assert abs(sum(acc["all"]["share"].values()) - 1) < 1e-9
    assert out["decision_ms"]["samples"] == 120
    assert 0 < out["decision_ms"]["p50"] <= out["decision_ms"]["p99"]
    for scenario in out["cost"].values():
        assert scenario["routed_usd"] <= scenario["strong_only_usd"]


def test_the_dataset_is_labelled_and_large_enough() -> None:
    rows = [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 300
    assert len({r["prompt"] for r in rows}) == len(rows)
    for row in rows:
        assert row["expected"] in ("cheap", "strong")
        assert row["complexity"] in ("simple", "complex")
        assert row["task"] and row["prompt"]
