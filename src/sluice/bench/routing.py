"""`sluice bench routing`: how a route splits a labelled prompt set, without model calls.

Each prompt goes through the route's rules and semantic strategies (a classifier would need
a model call and is not run here). Reported, for all rows and for the held-out split:
- share of prompts per target;
- agreement with the labels (`expected`: cheap | strong; a pick is "strong" when it is the
  route's reference model);
- decision overhead p50/p99 (feature extraction + rules + embedding + centroid search);
- estimated cost vs sending everything to the reference model, from the config's prices,
  estimated input tokens, and an assumed output length per prompt.

The split is fixed by a hash of the prompt: a third of rows are held out. Example utterances
in a route config must come from the tune split only for held-out numbers to mean anything.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sluice.config import SluiceConfig
from sluice.cost.compute import compute_cost
from sluice.observe.store import percentile
from sluice.routing.features import text_input
from sluice.routing.stage import build_routers
from sluice.routing.targets import targets_of
from sluice.types import Usage

# Assumed answer lengths in tokens. The first scenario gives both tiers the same length,
# the second makes complex answers four times longer (they dominate cost).
OUTPUT_SCENARIOS = {"equal 300/300": (300, 300), "weighted 150/600": (150, 600)}


@dataclass(frozen=True, slots=True)
class Row:
    prompt: str
    task: str
    expected: str  # cheap | strong
    complexity: str

    @property
    def held_out(self) -> bool:
        return is_held_out(self.prompt)


def is_held_out(prompt: str) -> bool:
    return hashlib.blake2b(prompt.encode(), digest_size=4).digest()[0] % 3 == 0


def load_rows(path: str) -> list[Row]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            rows.append(Row(data["prompt"], data["task"], data["expected"], data["complexity"]))
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{path}:{n}: not a dataset row ({exc})") from None
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


@dataclass(slots=True)
class _Tally:
    n: int = 0
    agree: int = 0
    picks: Counter[str] | None = None

    def add(self, target: str, ok: bool) -> None:
        self.picks = self.picks or Counter()
        self.n += 1
        self.agree += ok
        self.picks[target] += 1


def measure(config: SluiceConfig, rows: list[Row], route: str | None) -> dict[str, Any]:
    if not config.routes:
        raise ValueError("the config defines no routes")
    name = route or next(iter(config.routes))
    if name not in config.routes:
        raise ValueError(f"no route named {name!r}")
    targets = targets_of(config)
    router = build_routers(config)[name]
    if router.semantic is not None:
        router.semantic.nearest_sync("warm up")  # loads the model and builds centroids
    picks: list[str] = []
    timings: list[float] = []
    by_strategy: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}  # this thread's CPU time: what a loaded host hides
    for _ in range(3):  # three passes for stable percentiles; the picks are the same
        picks = []
        for row in rows:
            started, cpu_started = time.perf_counter(), time.thread_time()
            decision = router.decide_sync(text_input(row.prompt))
            elapsed = (time.perf_counter() - started) * 1000
            cpu.setdefault(decision.strategy, []).append((time.thread_time() - cpu_started) * 1000)
            timings.append(elapsed)
            by_strategy.setdefault(decision.strategy, []).append(elapsed)
            picks.append(decision.target)
    tallies = {"all": _Tally(), "tune": _Tally(), "held-out": _Tally()}
    for row, target in zip(rows, picks, strict=True):
        tier = "strong" if target == router.reference else "cheap"
        for key in ("all", "held-out" if row.held_out else "tune"):
            tallies[key].add(target, tier == row.expected)
    timings.sort()
    ref_price = targets[router.reference].price
    costs = {}
    for scenario, lengths in OUTPUT_SCENARIOS.items():
        routed = strong = Decimal(0)
        for row, target in zip(rows, picks, strict=True):
            out = lengths[0] if row.complexity == "simple" else lengths[1]
            usage = Usage(input_tokens=text_input(row.prompt).input_tokens, output_tokens=out)
            routed += compute_cost(usage, targets[target].price) or Decimal(0)
            strong += compute_cost(usage, ref_price) or Decimal(0)
        costs[scenario] = {
            "routed_usd": float(routed),
            "strong_only_usd": float(strong),
            "reduction": float(1 - routed / strong) if strong else 0.0,
        }
    return {
        "route": name,
        "reference": router.reference,
        "rows": len(rows),
        "accuracy": {
            k: {"n": t.n, "agreement": t.agree / t.n if t.n else None, "share": _shares(t)}
            for k, t in tallies.items()
        },
        "decision_ms": {
            "p50": percentile(timings, 50),
            "p99": percentile(timings, 99),
            "samples": len(timings),
        },
        "by_strategy": {
            name: {
                "share": len(ms) / len(timings),
                "p50_ms": percentile(sorted(ms), 50),
                "p99_ms": percentile(sorted(ms), 99),
                "cpu_p50_ms": percentile(sorted(cpu[name]), 50),
            }
            for name, ms in sorted(by_strategy.items())
        },
        "cost": costs,
    }


def _shares(t: _Tally) -> dict[str, float]:
    picks = t.picks or Counter()
    return {target: count / t.n for target, count in sorted(picks.items())}


def run(config: SluiceConfig, dataset: str, route: str | None, *, as_json: bool = False) -> str:
    result = measure(config, load_rows(dataset), route)
    if as_json:
        return json.dumps(result, indent=2)
    lines = [f"route {result['route']} (reference {result['reference']}), {result['rows']} prompts"]
    for key, acc in result["accuracy"].items():
        shares = ", ".join(f"{t} {s:.0%}" for t, s in acc["share"].items())
        lines.append(f"  {key:9} n={acc['n']:4}  agreement {acc['agreement']:.1%}  ({shares})")
    ms = result["decision_ms"]
    lines.append(
        f"  decision overhead (rules+semantic): p50 {ms['p50']:.2f} ms, p99 {ms['p99']:.2f} ms "
        f"over {ms['samples']} decisions"
    )
    for name, st in result["by_strategy"].items():
        lines.append(
            f"    decided by {name:9} {st['share']:6.1%}  p50 {st['p50_ms']:.3f} ms, "
            f"p99 {st['p99_ms']:.3f} ms (thread CPU p50 {st['cpu_p50_ms']:.3f} ms)"
        )
    for scenario, c in result["cost"].items():
        lines.append(
            f"  cost, output {scenario}: ${c['routed_usd']:.4f} routed vs "
            f"${c['strong_only_usd']:.4f} strong-only = {c['reduction']:.1%} less"
        )
    return "\n".join(lines)
