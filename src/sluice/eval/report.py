"""`sluice eval report RUN`: one eval run as Markdown, HTML or JSON, with charts.

A run is read from a results file (`sluice eval run --out`) or from the store (`sluice eval
run --store`, by run id). The report has the per-target table (mean score with its 95%
bootstrap interval, pass rate, cost per item and per quality point, latency p50/p95), four
bar charts (mean score with the interval as a whisker, pass rate, cost per item, latency),
and per candidate target the items that scored worse than on the baseline (the first target).

Charts are inline SVG written here (a few rectangles and labels: no plotting library, no
JavaScript, nothing fetched from a CDN); every string from the results is escaped. HTML gets
the SVG inline; Markdown gets each chart as an `<img>` with a `data:image/svg+xml` URI (most
Markdown viewers show it; GitHub strips data URIs, so CI jobs publish the HTML).
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from sluice.eval.results import (
    Regression,
    TargetSummary,
    gate,
    read_results,
    regressions,
    summarize,
)
from sluice.eval.runner import ItemResult

FORMATS = ("md", "html", "json")
_PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")


@dataclass(frozen=True, slots=True)
class RunReport:
    run_id: str
    dataset: str
    targets: list[str]
    summaries: list[TargetSummary]
    worse: dict[str, list[Regression]]  # candidate target -> items worse than the baseline
    failures: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "baseline": self.targets[0] if self.targets else None,
            "targets": [s.to_json() for s in self.summaries],
            "regressions": {t: [w.to_json() for w in ws] for t, ws in self.worse.items()},
            "failures": self.failures,
        }


def build(
    run_id: str,
    dataset: str,
    results: Sequence[ItemResult],
    targets: Sequence[str] | None = None,
    *,
    fail_under: float | None = None,
    max_regression: float | None = None,
) -> RunReport:
    order = list(targets) if targets else list(dict.fromkeys(r.target for r in results))
    summaries = summarize(results, order)
    worse = {t: regressions(results, order[0], t) for t in order[1:]}
    failures = gate(summaries, fail_under=fail_under, max_regression=max_regression)
    return RunReport(run_id, dataset, order, summaries, worse, failures)


def load_file(path: Path) -> list[ItemResult]:
    """A results file in its order (failed calls kept: they count as errors)."""
    out: list[ItemResult] = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            out.append(ItemResult.from_json(orjson.loads(line)))
    return out


__all__ = ["FORMATS", "RunReport", "build", "load_file", "read_results", "render"]


def render(report: RunReport, fmt: str) -> str:
    if fmt == "json":
        return orjson.dumps(report.to_json()).decode()
    if fmt == "html":
        return _html(report)
    if fmt == "md":
        return _markdown(report)
    raise ValueError(f"format must be one of {', '.join(FORMATS)}")


# --- charts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float | None
    low: float | None = None  # whisker (a confidence interval)
    high: float | None = None


def bar_chart(title: str, bars: Sequence[Bar], *, unit: str = "", top: float | None = None) -> str:
    """A horizontal bar chart as standalone SVG; a missing value is drawn as `n/a`."""
    row, left, width, chart = 26, 190, 620, 330
    height = 34 + row * max(len(bars), 1) + 8
    known = [b.high if b.high is not None else b.value for b in bars]
    peak = top or max((v for v in known if v is not None), default=0.0) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}" '
        'font-family="sans-serif" font-size="12">',
        f'<text x="4" y="16" font-weight="bold">{_e(title)}</text>',
    ]
    for i, b in enumerate(bars):
        y = 30 + i * row
        parts.append(f'<text x="4" y="{y + 14}">{_e(_clip(b.label, 28))}</text>')
        if b.value is None:
            parts.append(f'<text x="{left}" y="{y + 14}" fill="#777">n/a</text>')
            continue
        w = max(chart * min(b.value / peak, 1.0), 0.0)
        color = _PALETTE[i % len(_PALETTE)]
        parts.append(
            f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 8}" fill="{color}"/>'
        )
        end = left + w
        if b.low is not None and b.high is not None:
            x1 = left + chart * min(b.low / peak, 1.0)
            x2 = left + chart * min(b.high / peak, 1.0)
            end = max(end, x2)
            mid = y + 2 + (row - 8) / 2
            parts.append(
                f'<path d="M{x1:.1f} {mid:.1f}H{x2:.1f}M{x1:.1f} {mid - 5:.1f}V{mid + 5:.1f}'
                f'M{x2:.1f} {mid - 5:.1f}V{mid + 5:.1f}" stroke="#222" stroke-width="1.5"/>'
            )
        text = _number(b.value) + unit
        parts.append(f'<text x="{end + 6:.1f}" y="{y + 14}">{_e(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def charts(report: RunReport) -> list[tuple[str, str]]:
    """(title, svg) of the run's charts."""
    s = report.summaries
    return [
        (
            "Mean score (95% CI)",
            bar_chart(
                "Mean score (95% CI)",
                [Bar(x.target, x.mean_score, *(x.ci95 if x.ci95 else (None, None))) for x in s],
                top=1.0,
            ),
        ),
        (
            "Pass rate",
            bar_chart(
                "Pass rate", [Bar(x.target, x.pass_rate * 100) for x in s], unit="%", top=100
            ),
        ),
        (
            "Cost per item (USD)",
            bar_chart(
                "Cost per item (USD)",
                [
                    Bar(
                        x.target,
                        None if x.cost_per_item_usd is None else float(x.cost_per_item_usd),
                    )
                    for x in s
                ],
            ),
        ),
        (
            "Latency p50 / p95 (ms)",
            bar_chart(
                "Latency p50 / p95 (ms)",
                [
                    b
                    for x in s
                    for b in (
                        Bar(f"{x.target} p50", x.latency_ms_p50),
                        Bar(f"{x.target} p95", x.latency_ms_p95),
                    )
                ],
                unit=" ms",
            ),
        ),
    ]


# --- Markdown and HTML -----------------------------------------------------------------

_COLUMNS = (
    "target",
    "items",
    "errors",
    "mean score",
    "95% CI",
    "pass rate",
    "$/item",
    "$/quality point",
    "p50 ms",
    "p95 ms",
)


def _row(s: TargetSummary) -> list[str]:
    return [
        s.target,
        str(s.items),
        str(s.errors),
        f"{s.mean_score:.3f}",
        "-" if s.ci95 is None else f"{s.ci95[0]:.3f} to {s.ci95[1]:.3f}",
        f"{s.pass_rate:.1%}",
        "unknown" if s.cost_per_item_usd is None else f"{s.cost_per_item_usd:.8f}",
        "-" if s.cost_per_point_usd is None else f"{s.cost_per_point_usd:.8f}",
        _ms(s.latency_ms_p50),
        _ms(s.latency_ms_p95),
    ]


def _markdown(report: RunReport) -> str:
    lines = [
        f"# Eval run `{_md(report.run_id)}` on `{_md(report.dataset)}`",
        "",
        "| " + " | ".join(_COLUMNS) + " |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += ["| " + " | ".join(_md(c) for c in _row(s)) + " |" for s in report.summaries]
    lines += ["", "## Charts", ""]
    for title, svg in charts(report):
        uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
        lines.append(f'<img alt="{_e(title)}" src="{uri}"/>')
        lines.append("")
    baseline = report.targets[0] if report.targets else ""
    for target, worse in report.worse.items():
        lines += ["", f"## Items worse on `{_md(target)}` than on `{_md(baseline)}`", ""]
        if not worse:
            lines.append("(none)")
            continue
        lines += ["| item | baseline | candidate | change |", "| --- | ---: | ---: | ---: |"]
        lines += [
            f"| `{_md(w.item_id)}` | {w.baseline:.3f} | {w.candidate:.3f} | "
            f"{w.candidate - w.baseline:+.3f} |"
            for w in worse
        ]
    lines += ["", "## Gates", ""] + ([f"- FAIL: {_md(f)}" for f in report.failures] or ["- pass"])
    return "\n".join(lines) + "\n"


_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
    "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.fail{color:#b00}.pass{color:#070}"
    "figure{display:inline-block;margin:0 1em 1em 0}"
)


def _html(report: RunReport) -> str:
    title = f"Eval run {report.run_id} on {report.dataset}"
    out = [
        '<!doctype html><html><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        "<table><tr>" + "".join(f"<th>{_e(c)}</th>" for c in _COLUMNS) + "</tr>",
    ]
    for s in report.summaries:
        out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in _row(s)) + "</tr>")
    out.append("</table><h2>Charts</h2>")
    out += [f"<figure>{svg}</figure>" for _, svg in charts(report)]
    baseline = report.targets[0] if report.targets else ""
    for target, worse in report.worse.items():
        out.append(f"<h2>Items worse on {_e(target)} than on {_e(baseline)}</h2>")
        if not worse:
            out.append("<p>(none)</p>")
            continue
        out.append(
            "<table><tr><th>item</th><th>baseline</th><th>candidate</th><th>change</th></tr>"
        )
        out += [
            f"<tr><td>{_e(w.item_id)}</td><td>{w.baseline:.3f}</td><td>{w.candidate:.3f}</td>"
            f"<td>{w.candidate - w.baseline:+.3f}</td></tr>"
            for w in worse
        ]
        out.append("</table>")
    out.append("<h2>Gates</h2><ul>")
    out += [f'<li class="fail">FAIL: {_e(f)}</li>' for f in report.failures] or [
        '<li class="pass">pass</li>'
    ]
    out.append("</ul></body></html>")
    return "\n".join(out) + "\n"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _md(text: str) -> str:
    """A value safe inside a Markdown table cell or code span (and as HTML)."""
    return _e(text.replace("|", "\\|").replace("`", "'").replace("\n", " "))


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _number(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2e}"
