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
import math
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
from sluice.routing.router import Router
from sluice.routing.signals import Turns
from sluice.routing.stage import build_routers
from sluice.routing.targets import targets_of
from sluice.types import Usage

# Assumed answer lengths in tokens. The first scenario gives both tiers the same length,
# the second makes complex answers four times longer (they dominate cost).
OUTPUT_SCENARIOS = {"equal 300/300": (300, 300), "weighted 150/600": (150, 600)}


# Realistic answer lengths: log-normal per class, medians 120 (simple) and 550 (complex)
# tokens — short look-ups and rewrites vs code, analyses and essays (seeded, repeatable).
LOGNORMAL = {"simple": (120, 0.6), "complex": (550, 0.5)}


@dataclass(frozen=True, slots=True)
class Row:
    prompt: str
    task: str
    expected: str  # cheap | strong
    complexity: str
    earlier: tuple[str, ...] = ()  # user turns before the prompt
    split: str | None = None  # train | calib | heldout, when the file says

    @property
    def held_out(self) -> bool:
        if self.split is not None:
            return self.split == "heldout"
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
            earlier = tuple(
                m["content"] for m in data.get("history", []) if m.get("role") == "user"
            )
            rows.append(
                Row(
                    data["prompt"], data.get("task", ""), data["expected"],
                    data.get("complexity", "complex" if data["expected"] == "strong" else "simple"),
                    earlier, data.get("split"),
                )
            )  # fmt: skip
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
    confusion: Counter[tuple[str, str]] | None = None  # (label, picked tier)

    def add(self, target: str, label: str, tier: str) -> None:
        self.picks = self.picks or Counter()
        self.confusion = self.confusion or Counter()
        self.n += 1
        self.agree += label == tier
        self.picks[target] += 1
        self.confusion[(label, tier)] += 1

    def summary(self) -> dict[str, Any]:
        c = self.confusion or Counter()
        strong, cheap = (
            c["strong", "strong"] + c["strong", "cheap"],
            c["cheap", "cheap"] + c["cheap", "strong"],
        )
        return {
            "n": self.n,
            "agreement": self.agree / self.n if self.n else None,
            "share": _shares(self),
            "confusion": {
                "strong_needed": {"cheap": c["strong", "cheap"], "strong": c["strong", "strong"]},
                "simple": {"cheap": c["cheap", "cheap"], "strong": c["cheap", "strong"]},
            },
            "strong_to_cheap": c["strong", "cheap"] / strong if strong else None,
            "simple_to_cheap": c["cheap", "cheap"] / cheap if cheap else None,
        }


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
    if router.learned is not None:
        router.learned.decide_sync(text_input("warm up"))
    picks: list[str] = []
    timings: list[float] = []
    by_strategy: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}  # this thread's CPU time: what a loaded host hides
    for _ in range(3):  # three passes for stable percentiles; the picks are the same
        picks = []
        for row in rows:
            started, cpu_started = time.perf_counter(), time.thread_time()
            decision = router.decide_sync(text_input(row.prompt, earlier=list(row.earlier)))
            elapsed = (time.perf_counter() - started) * 1000
            cpu.setdefault(decision.strategy, []).append((time.thread_time() - cpu_started) * 1000)
            timings.append(elapsed)
            by_strategy.setdefault(decision.strategy, []).append(elapsed)
            picks.append(decision.target)
    tallies = {"all": _Tally(), "tune": _Tally(), "held-out": _Tally()}
    for row, target in zip(rows, picks, strict=True):
        tier = "strong" if target == router.reference else "cheap"
        for key in ("all", "held-out" if row.held_out else "tune"):
            tallies[key].add(target, row.expected, tier)
    timings.sort()
    ref_price = targets[router.reference].price
    costs = {}
    sampled = _sampled_lengths(rows)
    scenarios: dict[str, list[int]] = {
        name: [lengths[0] if r.complexity == "simple" else lengths[1] for r in rows]
        for name, lengths in OUTPUT_SCENARIOS.items()
    }
    scenarios["log-normal 120/550 median"] = sampled
    for scenario, outs in scenarios.items():
        routed = strong = Decimal(0)
        for row, target, out in zip(rows, picks, outs, strict=True):
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
        "accuracy": {k: t.summary() for k, t in tallies.items()},
        "learned_model_us": _model_only_us(router),
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


def _sampled_lengths(rows: list[Row]) -> list[int]:
    import random

    rng = random.Random(15)
    out = []
    for row in rows:
        median, sigma = LOGNORMAL["simple" if row.complexity == "simple" else "complex"]
        out.append(max(1, round(rng.lognormvariate(math.log(median), sigma))))
    return out


def _model_only_us(router: Router) -> dict[str, float | None] | None:
    """The learned model's own cost per decision (signals + dot product), embedding excluded."""
    learned = router.learned
    if learned is None:
        return None
    import numpy as np

    vector = np.ones(learned.weights.w_embed.shape[0], dtype=np.float32)
    vector /= np.linalg.norm(vector)
    turns = Turns("Write a Python function that merges overlapping intervals, with tests.")
    samples, cpu = [], []
    for _ in range(2000):
        started, cpu_started = time.perf_counter(), time.thread_time()
        learned.verdict(vector, turns)
        samples.append((time.perf_counter() - started) * 1e6)
        cpu.append((time.thread_time() - cpu_started) * 1e6)
    samples.sort()
    cpu.sort()
    return {
        "p50": percentile(samples, 50),
        "p99": percentile(samples, 99),
        "cpu_p50": percentile(cpu, 50),
        "cpu_p99": percentile(cpu, 99),
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
        if not acc["n"]:
            continue
        shares = ", ".join(f"{t} {s:.0%}" for t, s in acc["share"].items())
        lines.append(f"  {key:9} n={acc['n']:4}  agreement {acc['agreement']:.1%}  ({shares})")
        c = acc["confusion"]
        hard, easy = c["strong_needed"], c["simple"]
        lines.append(
            f"            strong-needed sent cheap {_pct(acc['strong_to_cheap'])} "
            f"({hard['cheap']}/{hard['cheap'] + hard['strong']}), "
            f"simple sent cheap {_pct(acc['simple_to_cheap'])} "
            f"({easy['cheap']}/{easy['cheap'] + easy['strong']})"
        )
    ms = result["decision_ms"]
    lines.append(
        f"  decision overhead (rules+learned/semantic, embedding included): p50 {ms['p50']:.2f} ms,"
        f" p99 {ms['p99']:.2f} ms over {ms['samples']} decisions"
    )
    if result["learned_model_us"]:
        us = result["learned_model_us"]
        lines.append(
            f"  learned model on top of the embedding: p50 {us['p50']:.1f} µs, "
            f"p99 {us['p99']:.1f} µs (thread CPU p50 {us['cpu_p50']:.1f}, p99 {us['cpu_p99']:.1f})"
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


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"
