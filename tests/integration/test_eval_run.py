"""`sluice eval run` end to end: the simulator behind a real gateway, the CLI calling it with
the official openai SDK, records in SQLite, and a CI gate that fails on a regression."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from click.testing import CliRunner, Result

from sluice import server
from sluice.cli import main
from sluice.config import default_config
from sluice.observe.records import CallRecord
from sluice.observe.store import RecordStore
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration
QUESTIONS = [f"eval question number {i}" for i in range(6)]


@pytest.fixture
async def gateway_url(sim_url: str) -> AsyncIterator[str]:
    runner, port = await server.start(gateway_config(sim_url))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def records_when(
    check: Callable[[list[CallRecord]], bool], timeout_s: float = 30.0
) -> list[CallRecord]:
    """The gateway's records once `check` holds of them (the sink writes them in batches
    every 0.5 s), or as they are at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        store = RecordStore(default_config().observability.records.store_url or "")
        try:
            records = store.query()
        finally:
            store.close()
        if check(records) or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.1)


async def _answers(base: str, model: str) -> list[str]:
    """What `model` answers (the simulator is deterministic per model and prompt)."""
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key="x", max_retries=0)
    try:
        out = []
        for q in QUESTIONS:
            chat = await client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": q}],
            )
            out.append(chat.choices[0].message.content or "")
        return out
    finally:
        await client.close()


def _dataset(path: Path, answers: list[str]) -> None:
    lines: list[dict[str, Any]] = [
        {"id": f"q{i}", "input": q, "expected": a, "tags": ["golden"]}
        for i, (q, a) in enumerate(zip(QUESTIONS, answers, strict=True))
    ]
    lines.append(
        {
            "id": "shape",
            "messages": [{"role": "user", "content": "say something"}],
            "system": "be brief",
            "scorers": [
                {"type": "regex", "pattern": r"^\[simulated\] "},
                {"type": "contains", "value": "SIMULATED", "ignore_case": True},
            ],
        }
    )
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))


async def _cli(*args: str) -> Result:
    # The CLI runs its own event loop (asyncio.run): give it a thread.
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


async def test_two_targets_gate_fails_on_the_injected_regression(
    gateway_url: str, tmp_path: Path
) -> None:
    dataset = tmp_path / "golden.jsonl"
    _dataset(dataset, await _answers(gateway_url, "gpt-4o-mini"))
    result = await _cli(
        "eval", "run", "--dataset", str(dataset), "--url", gateway_url,
        "--target", "gpt-4o-mini", "--target", "gpt-4o",  # gpt-4o's answers differ
        "--no-cache", "--concurrency", "3", "--store", "sqlite:///sluice.db",
        "--max-regression", "0.1", "--json",
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    doc = orjson.loads(result.stdout.strip().splitlines()[-1])
    base, cand = doc["targets"]
    assert base["target"] == "gpt-4o-mini" and base["mean_score"] == 1.0
    assert base["pass_rate"] == 1.0 and base["ci95"] == [1.0, 1.0]
    # The candidate passes only the shape item: 1 of 7.
    assert cand["pass_rate"] == pytest.approx(1 / 7) and cand["mean_score"] == pytest.approx(1 / 7)
    assert cand["ci95"][0] < cand["mean_score"] < cand["ci95"][1]
    assert sorted(r["item_id"] for r in doc["regressions"]) == [f"q{i}" for i in range(6)]
    assert len(doc["failures"]) == 1 and "max-regression" in doc["failures"][0]
    # Costs come from the call records (the gateway sends no cost header), per item.
    for summary in (base, cand):
        assert summary["cost_sources"] == {
            "header": 7
        }  # x-sluice-cost-usd on every answer, summary
        assert float(summary["cost_per_item_usd"]) > 0
        assert (
            summary["latency_ms_p50"] > 0 and summary["latency_ms_p95"] >= summary["latency_ms_p50"]
        )

    rows = [orjson.loads(x) for x in (tmp_path / "golden.results.jsonl").read_text().splitlines()]
    assert len(rows) == 14
    shape = next(r for r in rows if r["item_id"] == "shape" and r["target"] == "gpt-4o")
    assert shape["scores"] == {"regex": 1.0, "contains": 1.0} and shape["passed"]
    assert all(r["request_id"].startswith("eval-") and r["error"] is None for r in rows)

    # --no-cache: every item reached the simulator (no cache hits in the records).
    groups: dict[str | None, Any] = {}
    for _ in range(100):  # records are written in batches, off the request path
        report = await _cli("report", "--by", "feature", "--json", "--since", "1h")
        groups = {g["group"]: g for g in orjson.loads(report.output)["groups"]}
        if groups.get("sluice-eval", {}).get("calls", 0) >= 14:
            break
        await asyncio.sleep(0.1)
    assert groups["sluice-eval"]["calls"] == 14 and groups["sluice-eval"]["cache_hits"] == 0

    # The run is saved in the store: `sluice eval runs` lists it per target.
    runs = await _cli("eval", "runs", "--json")
    assert runs.exit_code == 0, runs.output
    listed = {r["target"]: r for r in orjson.loads(runs.output)}
    assert listed["gpt-4o-mini"]["run_id"] == doc["run_id"] == listed["gpt-4o"]["run_id"]
    assert (
        listed["gpt-4o-mini"]["items"] == 7 and listed["gpt-4o"]["mean_score"] == cand["mean_score"]
    )

    # The baseline alone passes its gate: exit 0, and the table names it.
    ok = await _cli(
        "eval", "run", "--dataset", str(dataset), "--url", gateway_url,
        "--target", "gpt-4o-mini", "--fail-under", "0.9", "--out", str(tmp_path / "b.jsonl"),
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "gates: pass" in ok.stdout and "header" in ok.stdout  # cost: x-sluice-cost-usd


async def test_fail_under_and_errors(gateway_url: str, tmp_path: Path) -> None:
    dataset = tmp_path / "d.jsonl"
    dataset.write_text(
        orjson.dumps({"input": "hi", "scorers": [{"type": "json_valid"}]}).decode() + "\n"
    )
    result = await _cli(
        "eval", "run", "--dataset", str(dataset), "--url", gateway_url,
        "--target", "gpt-4o-mini", "--target", "no-such-model", "--fail-under", "0.5",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "FAIL: gpt-4o-mini: mean score 0.000" in result.stdout
    rows = [orjson.loads(x) for x in (tmp_path / "d.results.jsonl").read_text().splitlines()]
    missing = next(r for r in rows if r["target"] == "no-such-model")
    assert missing["error"].startswith("404") and missing["score"] == 0.0


async def test_bad_dataset_is_a_clear_error(tmp_path: Path) -> None:
    dataset = tmp_path / "bad.jsonl"
    dataset.write_text('{"input": "x", "expected": "y"}\n{"input": "no scorer"}\n')
    result = await _cli(
        "eval", "run", "--dataset", str(dataset), "--url", "http://127.0.0.1:9", "--target", "m"
    )
    assert result.exit_code == 1
    assert "bad.jsonl:2" in result.output and "expected" in result.output


async def test_judge_scorer_through_the_gateway(gateway_url: str, tmp_path: Path) -> None:
    """The simulator as a deterministic judge: a schema-valid verdict through Sluice's
    structured-output path, recorded as a helper call of the judged call."""
    dataset = tmp_path / "judged.jsonl"
    items = [
        {
            "id": f"j{i}",
            "input": f"write a greeting {i}",
            "scorers": [{"type": "judge", "rubric": "Is it a friendly greeting?", "pass_at": 1}],
        }
        for i in range(3)
    ]
    dataset.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in items))
    args = ["eval", "run", "--dataset", str(dataset), "--url", gateway_url, "--json"]
    missing = await _cli(*args, "--target", "gpt-4o-mini")
    assert missing.exit_code == 1 and "--judge-model" in missing.output
    result = await _cli(*args, "--target", "gpt-4o-mini", "--judge-model", "gpt-4o")
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(x) for x in (tmp_path / "judged.results.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        verdict = row["judgements"]["judge"]
        assert 1 <= verdict["score"] <= 5 and isinstance(verdict["reason"], str)
        assert row["scores"]["judge"] == (verdict["score"] - 1) / 4 and row["passed"]
    again = await _cli(*args, "--target", "gpt-4o-mini", "--judge-model", "gpt-4o", "--no-cache")
    rows2 = [orjson.loads(x) for x in (tmp_path / "judged.results.jsonl").read_text().splitlines()]
    assert again.exit_code == 0
    assert [r["judgements"]["judge"]["score"] for r in rows2] == [
        r["judgements"]["judge"]["score"] for r in rows
    ]
    judged = {r["request_id"] for r in rows}

    def judges(records: list[CallRecord]) -> list[CallRecord]:
        return [r for r in records if r.feature == "sluice-eval-judge"]

    records = await records_when(lambda rs: {r.parent_request_id for r in judges(rs)} >= judged)
    judge_calls = judges(records)
    assert {r.parent_request_id for r in judge_calls} >= judged
    assert all(r.model_requested == "gpt-4o" and r.status == 200 for r in judge_calls)


def share_of_words(answer: str, expected: str | None) -> float:
    """A custom scorer (named by import path in the dataset below)."""
    return min(1.0, len(answer.split()) / 20)


def broken_scorer(answer: str, expected: str | None) -> float:
    raise RuntimeError("scorer bug")


async def test_custom_scorer_markdown_and_resume(gateway_url: str, tmp_path: Path) -> None:
    here = "tests.integration.test_eval_run"
    dataset = tmp_path / "custom.jsonl"
    items: list[dict[str, Any]] = [
        {
            "id": f"c{i}",
            "input": f"custom scorer question {i}",
            "scorers": [{"type": "python", "callable": f"{here}:share_of_words", "threshold": 0.2}],
        }
        for i in range(3)
    ]
    items.append(
        {
            "id": "bug",
            "input": "x",
            "scorers": [{"type": "python", "callable": f"{here}:broken_scorer"}],
        }
    )
    dataset.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in items))
    markdown = tmp_path / "report.md"
    args = [
        "eval",
        "run",
        "--dataset",
        str(dataset),
        "--url",
        gateway_url,
        "--target",
        "gpt-4o-mini",
        "--allow-python-scorers",
    ]
    first = await _cli(*args, "--markdown", str(markdown))
    assert first.exit_code == 0, first.output
    results = tmp_path / "custom.results.jsonl"
    rows = [orjson.loads(x) for x in results.read_text().splitlines()]
    assert [r["item_id"] for r in rows] == ["c0", "c1", "c2", "bug"]
    for row in rows[:3]:
        words = len(row["output"].split())
        assert row["scores"] == {"python": min(1.0, words / 20)} and row["passed"]
    assert (
        rows[3]["error"]
        == "scorer tests.integration.test_eval_run:broken_scorer: RuntimeError: scorer bug"
    )
    report = markdown.read_text()
    assert "| gpt-4o-mini | 4 | 1 |" in report and "## Gates" in report
    assert report.count("data:image/svg+xml;base64,") == 4  # the charts

    # An interrupted run: one good line and one cut short. --resume calls only the rest.
    lines = results.read_text().splitlines()
    results.write_text(lines[0] + "\n" + lines[1][:40] + "\n")
    again = await _cli(*args, "--resume")
    assert again.exit_code == 0, again.output
    rows2 = [orjson.loads(x) for x in results.read_text().splitlines()]
    assert [r["item_id"] for r in rows2] == ["c0", "c1", "c2", "bug"]
    assert rows2[0]["request_id"] == rows[0]["request_id"]  # kept, not called again
    assert rows2[1]["request_id"] != rows[1]["request_id"]  # a new run id

    def eval_calls(records: list[CallRecord]) -> list[CallRecord]:
        return [r for r in records if r.feature == "sluice-eval" and r.kind == "call"]

    calls = eval_calls(await records_when(lambda rs: len(eval_calls(rs)) >= 4 + 3))
    assert len(calls) == 4 + 3  # the first run, then all but the kept item


async def test_pairwise_judging_in_both_orders(gateway_url: str, tmp_path: Path) -> None:
    """The simulated pairwise judge decides by content, not position (the longer answer
    wins: sluice.sim.judge), so judged in both orders it agrees with itself: every item has
    an outcome, none by order disagreement, and the swapped verdict mirrors the first."""
    dataset = tmp_path / "pairs.jsonl"
    items = [{"id": f"p{i}", "input": f"pairwise {i}", "scorers": [{"type": "json_valid"}]}
             for i in range(3)]  # fmt: skip
    dataset.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in items))
    args = ["eval", "run", "--dataset", str(dataset), "--url", gateway_url, "--json",
            "--target", "gpt-4o-mini", "--target", "gpt-4o"]  # fmt: skip
    refused = await _cli(*args, "--pairwise", "Which is more helpful?")
    assert refused.exit_code == 1 and "--judge-model" in refused.output
    result = await _cli(*args, "--pairwise", "Which is more helpful?", "--judge-model", "gpt-4o")
    assert result.exit_code == 0, result.output
    pairwise = orjson.loads(result.stdout.strip().splitlines()[-1])["pairwise"]
    assert pairwise["inconsistent"] == 0 and pairwise["errors"] == 0
    assert pairwise["baseline_wins"] + pairwise["candidate_wins"] + pairwise["ties"] == 3
    mirrored = {"A": "B", "B": "A", "tie": "tie"}
    assert all(i["verdicts"][1] == mirrored[i["verdicts"][0]] for i in pairwise["items"])


def test_results_store_in_postgresql() -> None:
    from decimal import Decimal

    from sluice.eval.result_store import EvalResultStore
    from sluice.eval.runner import ItemResult
    from tests.governance_rig import postgres_schema

    with postgres_schema() as url:
        store = EvalResultStore.open(url)
        try:
            results = [
                ItemResult("a", "m1", "out", {"exact": 1.0}, 1.0, True, "r1", 5.0,
                           cost_usd=Decimal("0.0000010000"), cost_source="record"),
                ItemResult("b", "m1", None, {}, 0.0, False, "r2", 6.0, error="500: boom"),
            ]  # fmt: skip
            store.save("run1", "d.jsonl", results)
            (summary,) = store.runs()
            assert (summary.run_id, summary.target, summary.items) == ("run1", "m1", 2)
            assert summary.mean_score == 0.5 and summary.pass_rate == 0.5
        finally:
            store.close()
