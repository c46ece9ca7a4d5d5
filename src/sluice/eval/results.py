"""Eval results: per-target summaries, per-item regressions, CI gates, and the files.

A run's results are JSONL, one `ItemResult` per line (see `runner.ItemResult.to_json`), in
`<dataset>.results.jsonl` unless told otherwise. `summarize` turns them into one
`TargetSummary` per target; `regressions` lists the items whose score dropped from the first
target (the baseline) to the second (the candidate); `gate` applies `--fail-under` (to every
target's mean score) and `--max-regression` (the baseline's mean minus the candidate's).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from statistics import fmean
from typing import Any

import orjson

from sluice.eval.calls import find_call
from sluice.eval.runner import ItemResult
from sluice.eval.stats import bootstrap_ci, latency_percentiles
from sluice.observe.store import RecordStore


@dataclass(frozen=True, slots=True)
class TargetSummary:
    target: str
    items: int
    errors: int
    mean_score: float
    ci95: tuple[float, float] | None
    pass_rate: float
    cost_per_item_usd: Decimal | None  # over the items with a known cost
    cost_known: int  # items whose cost is known
    cost_sources: dict[str, int]
    cost_per_point_usd: Decimal | None  # cost per item / mean score
    latency_ms_p50: float | None
    latency_ms_p95: float | None

    def to_json(self) -> dict[str, Any]:
        def money(v: Decimal | None) -> str | None:
            return None if v is None else format(v, "f")

        return {
            "target": self.target,
            "items": self.items,
            "errors": self.errors,
            "mean_score": self.mean_score,
            "ci95": None if self.ci95 is None else list(self.ci95),
            "pass_rate": self.pass_rate,
            "cost_per_item_usd": money(self.cost_per_item_usd),
            "cost_known_items": self.cost_known,
            "cost_sources": self.cost_sources,
            "cost_per_quality_point_usd": money(self.cost_per_point_usd),
            "latency_ms_p50": self.latency_ms_p50,
            "latency_ms_p95": self.latency_ms_p95,
        }


def summarize(results: Sequence[ItemResult], targets: Sequence[str]) -> list[TargetSummary]:
    out = []
    for target in targets:
        mine = [r for r in results if r.target == target]
        scores = [r.score for r in mine]
        costs = [r.cost_usd for r in mine if r.cost_usd is not None]
        sources: dict[str, int] = {}
        for r in mine:
            sources[r.cost_source] = sources.get(r.cost_source, 0) + 1
        mean = fmean(scores) if scores else 0.0
        per_item = (sum(costs, Decimal(0)) / len(costs)) if costs else None
        per_point = None
        if per_item is not None and mean > 0:
            per_point = (per_item / Decimal(repr(mean))).quantize(Decimal("1e-12"))
        p50, p95 = latency_percentiles([r.latency_ms for r in mine if r.error is None])
        out.append(
            TargetSummary(
                target=target,
                items=len(mine),
                errors=sum(r.error is not None for r in mine),
                mean_score=mean,
                ci95=bootstrap_ci(scores),
                pass_rate=(sum(r.passed for r in mine) / len(mine)) if mine else 0.0,
                cost_per_item_usd=per_item,
                cost_known=len(costs),
                cost_sources=sources,
                cost_per_point_usd=per_point,
                latency_ms_p50=p50,
                latency_ms_p95=p95,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Regression:
    item_id: str
    baseline: float
    candidate: float

    def to_json(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "baseline": self.baseline, "candidate": self.candidate}


def regressions(results: Sequence[ItemResult], baseline: str, candidate: str) -> list[Regression]:
    """Items whose score is lower for `candidate` than for `baseline`, worst drop first."""
    base = {r.item_id: r.score for r in results if r.target == baseline}
    worse = [
        Regression(r.item_id, base[r.item_id], r.score)
        for r in results
        if r.target == candidate and r.item_id in base and r.score < base[r.item_id]
    ]
    worse.sort(key=lambda g: (g.candidate - g.baseline, g.item_id))
    return worse


def gate(
    summaries: Sequence[TargetSummary],
    *,
    fail_under: float | None,
    max_regression: float | None,
) -> list[str]:
    """Why the run fails its gates (empty: it passes)."""
    failures = []
    if fail_under is not None:
        for s in summaries:
            if s.mean_score < fail_under:
                failures.append(
                    f"{s.target}: mean score {s.mean_score:.3f} is under --fail-under {fail_under}"
                )
    if max_regression is not None and len(summaries) >= 2:
        drop = summaries[0].mean_score - summaries[1].mean_score
        if drop > max_regression:
            failures.append(
                f"{summaries[1].target}: mean score dropped {drop:.3f} from "
                f"{summaries[0].target} (over --max-regression {max_regression})"
            )
    return failures


def fill_costs_from_records(
    results: Sequence[ItemResult], store_url: str, *, wait_s: float = 3.0
) -> list[ItemResult]:
    """Results whose cost is unknown get their call record's cost (`cost_source="record"`).
    Records are written in batches, so this waits up to `wait_s` for the missing ones."""
    store = RecordStore(store_url)
    try:
        out = list(results)
        deadline = time.monotonic() + wait_s
        while True:
            missing = 0
            for i, r in enumerate(out):
                if r.cost_source != "none" or r.error is not None:
                    continue
                record = find_call(store, r.request_id)
                if record is None:
                    missing += 1
                elif record.cost_usd is not None:
                    out[i] = replace(r, cost_usd=record.cost_usd, cost_source="record")
            if not missing or time.monotonic() >= deadline:
                return out
            time.sleep(0.25)
    finally:
        store.close()


def read_results(path: Path) -> dict[tuple[str, str], ItemResult]:
    """The successful results of an earlier run of the same file (for `--resume`); failed
    calls and unreadable lines are run again. A later line wins over an earlier one."""
    if not path.is_file():
        return {}
    out: dict[tuple[str, str], ItemResult] = {}
    for line in path.read_bytes().splitlines():
        try:
            result = ItemResult.from_json(orjson.loads(line))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, ArithmeticError):
            continue  # a line cut short by an interrupted run
        if result.error is None:
            out[(result.target, result.item_id)] = result
    return out


def write_results(path: Path, results: Sequence[ItemResult]) -> None:
    with path.open("wb") as out:
        for r in results:
            out.write(orjson.dumps(r.to_json()) + b"\n")


def format_summary(
    summaries: Sequence[TargetSummary], worse: Sequence[Regression], failures: Sequence[str]
) -> str:
    header = (
        f"{'target':<28} {'items':>5} {'err':>4} {'mean':>6} {'95% CI':>15} {'pass':>6} "
        f"{'$/item':>12} {'cost from':>12} {'p50 ms':>8} {'p95 ms':>8}"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        ci = "-" if s.ci95 is None else f"[{s.ci95[0]:.3f}, {s.ci95[1]:.3f}]"
        cost = "unknown" if s.cost_per_item_usd is None else f"{s.cost_per_item_usd:.8f}"
        source = ",".join(f"{k}:{v}" for k, v in sorted(s.cost_sources.items()))
        lines.append(
            f"{s.target[:28]:<28} {s.items:>5} {s.errors:>4} {s.mean_score:>6.3f} {ci:>15} "
            f"{s.pass_rate:>6.1%} {cost:>12} {source:>12} {_ms(s.latency_ms_p50):>8} "
            f"{_ms(s.latency_ms_p95):>8}"
        )
    if len(summaries) >= 2:
        lines.append("")
        lines.append(
            f"{len(worse)} item(s) worse on {summaries[1].target} than on {summaries[0].target}"
            + (":" if worse else "")
        )
        lines += [f"  {w.item_id}: {w.baseline:.3f} -> {w.candidate:.3f}" for w in worse[:20]]
        if len(worse) > 20:
            lines.append(f"  ... and {len(worse) - 20} more (see the results file)")
    lines.append("")
    lines += [f"FAIL: {f}" for f in failures] or ["gates: pass"]
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
