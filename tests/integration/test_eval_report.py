"""`sluice eval report`: a saved two-target run as HTML, Markdown and JSON, with inline SVG
charts, the per-item regressions and the CI gates (exit code) recomputed from the store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from sluice import server
from sluice.cli import main
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration


@pytest.fixture
async def gateway_url(sim_url: str) -> AsyncIterator[str]:
    runner, port = await server.start(gateway_config(sim_url))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def _cli(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, main, list(args))


async def test_report_from_the_store_and_from_the_results_file(
    gateway_url: str, tmp_path: Path
) -> None:
    dataset = tmp_path / "d.jsonl"
    items = [
        # the baseline's (gpt-4o-mini) simulated answers start "[simulated]"; a `contains`
        # on a word only gpt-4o-mini's answer has is the injected regression
        {"id": "shape", "input": "say hi", "scorers": [{"type": "regex", "pattern": "^\\["}]},
        {"id": "evil<script>", "input": "x", "scorers": [{"type": "json_valid"}]},
    ]
    items += [
        {"id": f"q{i}", "input": f"question {i}", "expected": "never matches"} for i in range(3)
    ]
    dataset.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in items))
    run = await _cli(
        "eval", "run", "--dataset", str(dataset), "--url", gateway_url, "--json",
        "--target", "gpt-4o-mini", "--target", "gpt-4o", "--store", "sqlite:///sluice.db",
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    run_id = orjson.loads(run.stdout.strip().splitlines()[-1])["run_id"]

    as_json = await _cli(
        "eval", "report", run_id, "--store", "sqlite:///sluice.db", "--format", "json"
    )
    assert as_json.exit_code == 0, as_json.output
    doc = orjson.loads(as_json.stdout)
    assert doc["baseline"] == "gpt-4o-mini"
    assert [t["target"] for t in doc["targets"]] == ["gpt-4o-mini", "gpt-4o"]
    assert doc["targets"][0]["items"] == 5 and doc["failures"] == []

    html_out = tmp_path / "r.html"
    html = await _cli(
        "eval", "report", run_id, "--store", "sqlite:///sluice.db", "--format", "html",
        "--out", str(html_out),
    )  # fmt: skip
    assert html.exit_code == 0, html.output
    page = html_out.read_text()
    assert page.count("<svg") == 4 and "<script" not in page  # escaped, no JS at all
    assert "evil&lt;script&gt;" in page or "evil<script>" not in page
    assert "Mean score (95% CI)" in page and "gpt-4o-mini" in page

    md = await _cli("eval", "report", run_id, "--store", "sqlite:///sluice.db")
    assert md.exit_code == 0 and md.stdout.count("data:image/svg+xml;base64,") == 4
    assert "| target | items |" in md.stdout and "## Gates" in md.stdout

    # The gate recomputed from the saved run: the candidate's mean must not drop at all.
    base, cand = doc["targets"]
    gated = await _cli(
        "eval", "report", run_id, "--store", "sqlite:///sluice.db", "--format", "json",
        "--fail-under", str(min(base["mean_score"], cand["mean_score"]) + 0.01),
    )  # fmt: skip
    assert gated.exit_code == 1 and orjson.loads(gated.stdout)["failures"]

    # The same report from the results file; unknown runs and files are clear errors.
    from_file = await _cli("eval", "report", str(tmp_path / "d.results.jsonl"), "--format", "json")
    assert from_file.exit_code == 0, from_file.output
    keys = ("target", "items", "errors", "mean_score", "ci95", "pass_rate", "cost_per_item_usd")
    same = [{k: t[k] for k in keys} for t in orjson.loads(from_file.stdout)["targets"]]
    assert same == [{k: t[k] for k in keys} for t in doc["targets"]]
    missing = await _cli("eval", "report", "nope", "--store", "sqlite:///sluice.db")
    assert missing.exit_code == 1 and "no eval run 'nope'" in missing.output
    nofile = await _cli("eval", "report", "nope.jsonl")
    assert nofile.exit_code == 1 and "no results file" in nofile.output


def test_regressions_are_listed_per_item_with_an_injected_drop(tmp_path: Path) -> None:
    from sluice.eval.report import build, render
    from sluice.eval.runner import ItemResult

    def result(target: str, item: str, score: float) -> ItemResult:
        return ItemResult(item, target, "x", {"s": score}, score, score >= 0.5, "r", 10.0)

    results = [result("base", f"i{i}", 1.0) for i in range(4)]
    results += [result("cand", "i0", 1.0), result("cand", "i1", 0.0)]
    results += [result("cand", "i2", 0.5), result("cand", "i3", 1.0)]
    report = build("run1", "d.jsonl", results, max_regression=0.1)
    assert [w.item_id for w in report.worse["cand"]] == ["i1", "i2"]  # worst first
    assert report.failures and "max-regression" in report.failures[0]
    md = render(report, "md")
    assert "| `i1` | 1.000 | 0.000 | -1.000 |" in md and "FAIL:" in md
