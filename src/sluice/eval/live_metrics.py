"""Live evaluation's metrics and its alert rule (sluice.eval.live feeds both).

`LiveMetrics`: the shadow / online-eval counters and the quality-score histogram.
`QualityDrop`: the `quality_drop` rule the gateway's alert engine evaluates.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram

from sluice.eval.config import OnlineEvalConfig
from sluice.observe.alert_rules import SLOTS, Labels, Reading, Ring, Rule, span_text
from sluice.observe.records import CallRecord

OTHER = "_other"


# --- metrics ---------------------------------------------------------------------------


class LiveMetrics:
    """`sluice_shadow_calls_total{route,outcome}` (mirrored, failed, dropped, lost: abandoned
    at shutdown, skipped: a production answer served from a cache or replayed),
    `sluice_online_eval_total{route,outcome}` (judged, failed, dropped, lost, skipped: an
    answer with no text, or replayed) and the histogram
    `sluice_quality_score{route,model}` (0-1). Labels are config names only (else `_other`)."""

    def __init__(
        self, registry: CollectorRegistry, routes: Collection[str], models: Collection[str]
    ):
        self._routes, self._models = frozenset(routes), frozenset(models)
        self.shadow = Counter(
            "sluice_shadow_calls",
            "Shadow mirrors of live calls, by outcome.",
            ["route", "outcome"],
            registry=registry,
        )
        self.online = Counter(
            "sluice_online_eval",
            "Online quality judgements of live calls, by outcome.",
            ["route", "outcome"],
            registry=registry,
        )
        self.quality = Histogram(
            "sluice_quality_score",
            "Online judge scores of live answers, normalized to 0-1 ((verdict - 1) / 4).",
            ["route", "model"],
            buckets=(0.0, 0.25, 0.5, 0.75, 1.0),
            registry=registry,
        )

    def route(self, name: str) -> str:
        return name if name in self._routes else OTHER

    def model(self, name: str) -> str:
        return name if name in self._models else OTHER


# --- the alert rule --------------------------------------------------------------------


class QualityDrop(Rule):
    """`quality_drop`: per route with `online_eval.alert_below` set, the mean online score
    (0-1) over the route's `window_s` is under `alert_below`, with at least `min_scores`
    scores. Fed by the online judge (`add`), not by call records: a judged score arrives
    after its call. Evaluated by the gateway's alert engine like every other rule."""

    name = "quality_drop"

    def __init__(self, routes: Mapping[str, OnlineEvalConfig]) -> None:
        self._cfg = {r: c for r, c in routes.items() if c.alert_below is not None}
        self.window_s = max((c.window_s for c in self._cfg.values()), default=3600.0)
        self._rings: dict[str, Ring[list[float]]] = {
            r: Ring(c.window_s / SLOTS, SLOTS, _sum_count) for r, c in self._cfg.items()
        }

    @property
    def enabled(self) -> bool:
        return bool(self._cfg)

    def observe(self, record: CallRecord, cost: float | None) -> None:
        return None  # scores come through `add`

    def add(self, route: str, score: float, ts: float) -> None:
        ring = self._rings.get(route)
        if ring is None:
            return
        pos = ring.at(ts)
        if pos >= 0:
            acc = ring.vals[pos]
            acc[0] += score
            acc[1] += 1

    def check(self, now: float, active: Collection[Labels]) -> dict[Labels, Reading]:
        out: dict[Labels, Reading] = {}
        for route, ring in self._rings.items():
            cfg = self._cfg[route]
            total = n = 0.0
            for s, c in ring.window(now):
                total += s
                n += c
            mean = total / n if n else 0.0
            threshold = float(cfg.alert_below or 0.0)
            firing = n >= cfg.min_scores and mean < threshold
            summary = (
                f"online quality {mean:.3f} (mean of {int(n)} judged calls) on route {route} "
                f"over {span_text(cfg.window_s)}; threshold {threshold:.3f} "
                f"with at least {cfg.min_scores} scores"
            )
            out[(("route", route),)] = Reading(mean, threshold, firing, summary)
        return out


def _sum_count() -> list[float]:
    return [0.0, 0.0]
