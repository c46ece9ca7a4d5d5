"""The learned router with the real MiniLM model and the shipped weights: explain, train,
evaluate, bench, and a real gateway (openai SDK over loopback) with the self-check."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from openai import AsyncOpenAI

from sluice import server
from sluice.cli import main
from sluice.config import SluiceConfig, load_config
from sluice.routing.features import text_input
from sluice.routing.stage import build_routers
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "routing.yaml")
DATA = ROOT / "tests" / "data" / "routing_learned"
INTERVALS = (
    "Write a Python function that merges overlapping time intervals given as (start, end) "
    "tuples, handles unsorted input and touching intervals, and include pytest tests for the "
    "edge cases."
)


def explain(*args: str) -> str:
    result = CliRunner().invoke(main, ["route", "explain", "--config", EXAMPLE, *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_explain_shows_probability_threshold_and_what_pushed_it() -> None:
    out = explain("--route", "auto", INTERVALS)  # the example: was sent cheap
    assert "learned:    P(strong)=" in out and "-> gpt-4o " in out
    assert "threshold" in out and "from max_strong_to_cheap 2.0%" in out
    assert "pushed by (logits): " in out and "meaning (embedding)" in out
    assert "decision: learned: P(strong)=" in out and out.rstrip().endswith("gpt-4o")
    easy = explain("--route", "auto", "How do I reset my password?")
    assert "decision: learned: P(strong)=" in easy and "-> gpt-4o-mini" in easy


def test_explain_intent_rules_go_first_and_claude_pair_works() -> None:
    tagged = explain("--route", "auto", "--task", "math", "hi")
    assert "not consulted (explicit intent: tagged-hard)" in tagged
    assert "decision: rules: tagged-hard -> gpt-4o" in tagged
    claude = explain("--route", "auto-claude", INTERVALS)
    assert "decision: learned:" in claude and "-> claude-sonnet" in claude


def test_shipped_router_on_obvious_cases() -> None:
    router = build_routers(load_config(EXAMPLE))["auto"]
    picks = {
        text: router.decide_sync(text_input(text)).target
        for text in [
            INTERVALS,
            "Prove that there are infinitely many primes.",
            "Design a multi-tenant billing system and explain how it survives a region outage.",
            "Where can I download my invoices?",
            "thanks!",
            "Translate 'good night' into German.",
        ]
    }
    assert list(picks.values()) == ["gpt-4o"] * 3 + ["gpt-4o-mini"] * 3, picks
    # A follow-up is read with its context: "now add tests" after a code request is hard.
    follow = text_input("ok, now make it thread-safe and add tests",
                        earlier=["Write an LRU cache class in Java."])  # fmt: skip
    assert router.decide_sync(follow).target == "gpt-4o"


def test_train_then_evaluate_from_jsonl(tmp_path: Path) -> None:
    rows = [json.loads(line) for line in (DATA / "train.jsonl").read_text().splitlines()]
    small = tmp_path / "mine.jsonl"
    picked = [r for r in rows if r["expected"] == "strong"][:30]
    picked += [r for r in rows if r["expected"] == "cheap"][:30]
    small.write_text("\n".join(json.dumps(r) for r in picked) + "\n", encoding="utf-8")
    out = tmp_path / "mine.npz"
    trained = CliRunner().invoke(
        main, ["route", "train", "--dataset", str(small), "--out", str(out)]
    )
    assert trained.exit_code == 0, trained.output
    assert out.exists() and out.stat().st_size < 50_000
    assert "calibration split, max_strong_to_cheap 2%" in trained.output
    assert "warning: the calibration split has" in trained.output  # ~8 strong rows
    evaluated = CliRunner().invoke(
        main,
        ["route", "evaluate", "--dataset", str(small), "--weights", str(out), "--json",
         "--threshold", "0.5"],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    rep = json.loads(evaluated.output)
    assert rep["rows"] == 60 and rep["agreement"] > 0.8
    assert set(rep["confusion"]) == {"strong_needed", "simple"}
    assert rep["calibration"]["bins"]


def test_train_refuses_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["route", "train", "--dataset", str(bad)])
    assert result.exit_code != 0 and "bad.jsonl:1: not a labelled row" in result.output


def test_bench_routing_reports_the_goals_on_a_learned_route(tmp_path: Path) -> None:
    rows = (DATA / "heldout.jsonl").read_text(encoding="utf-8").splitlines()
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join(rows[:30]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["bench", "routing", "--config", EXAMPLE, "--dataset", str(small), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    held = out["accuracy"]["held-out"]
    assert held["n"] == 30 and out["accuracy"]["tune"]["n"] == 0
    assert held["strong_to_cheap"] is not None and held["simple_to_cheap"] is not None
    assert "log-normal 120/550 median" in out["cost"]
    assert out["learned_model_us"]["p50"] < 1000  # ≤ 1 ms on top of the embedding
    assert "learned" in out["by_strategy"]


ROUTE: dict[str, Any] = {
    "targets": ["gpt-4o-mini", "gpt-4o"],
    "default": "gpt-4o",
    # threshold 0.99 and a wide band: every cheap pick self-checks in this test
    "learned": {"cheap": "gpt-4o-mini", "strong": "gpt-4o", "threshold": 0.99,
                "self_check_band": 30.0},
}  # fmt: skip


@pytest.fixture
async def oai(sim_url: str) -> AsyncIterator[AsyncOpenAI]:
    data = gateway_config(sim_url).model_dump()
    data["routes"] = {**data["routes"], "checked": ROUTE}
    runner, port = await server.start(SluiceConfig.model_validate(data))
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", max_retries=0)
    yield client
    await client.close()
    await runner.cleanup()


async def test_gateway_default_auto_route_is_learned(oai: AsyncOpenAI) -> None:
    hard = await oai.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": INTERVALS}]
    )
    assert hard.headers["x-sluice-route-decision"].startswith("learned: P(strong)=")
    assert hard.parse().model == "gpt-4o"
    easy = await oai.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Where can I download my invoices?"}]
    )
    assert easy.parse().model == "gpt-4o-mini"


async def test_self_check_escalates_an_unsure_cheap_answer(oai: AsyncOpenAI) -> None:
    unsure = await oai.chat.completions.with_raw_response.create(
        model="checked",
        messages=[{"role": "user", "content": "What are your opening hours?"}],
        extra_headers={"x-sim-uncertain": "gpt-4o-mini"},  # the cheap model says UNCERTAIN
    )
    decision = unsure.headers["x-sluice-route-decision"]
    assert decision.startswith("learned: ") and "escalated (marker UNCERTAIN) -> gpt-4o" in decision
    text = unsure.parse().choices[0].message.content or ""
    assert text and "UNCERTAIN" not in text
    sure = await oai.chat.completions.with_raw_response.create(
        model="checked", messages=[{"role": "user", "content": "What are your opening hours?"}]
    )
    assert sure.parse().model == "gpt-4o-mini"
    assert "escalated" not in sure.headers["x-sluice-route-decision"]
