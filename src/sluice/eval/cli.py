"""`sluice eval`: run datasets against a gateway, and export / summarise user feedback."""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
import orjson

if TYPE_CHECKING:
    from sluice.eval.dataset import EvalItem
    from sluice.eval.live_store import ShadowPair
    from sluice.eval.pairwise import PairwiseReport
    from sluice.eval.runner import ItemResult, RunOptions
    from sluice.eval.shadow_report import ShadowGroup

DEFAULT_STORE = "sqlite:///sluice.db"


@click.group("eval")
def eval_group() -> None:
    """Offline eval runs and user feedback (issue 17)."""


@eval_group.command("run")
@click.option("--dataset", "dataset_path", required=True, type=click.Path(path_type=Path))
@click.option(
    "--target",
    "targets",
    multiple=True,
    required=True,
    help="A public model or route; the first is the baseline. Repeatable.",
)
@click.option("--url", required=True, help="The running gateway, e.g. http://127.0.0.1:8080")
@click.option(
    "--api-key",
    envvar="SLUICE_API_KEY",
    default="sluice",
    show_default=False,
    help="A virtual key when auth is on (default: $SLUICE_API_KEY).",
)
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option(
    "--rpm",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Start at most this many calls per minute.",
)
@click.option("--no-cache", is_flag=True, help="Bypass Sluice's caches (x-sluice-cache: no-store).")
@click.option(
    "--store",
    default=None,
    help="The records store URL, to take each item's cost from its call record.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Results JSONL (default: <dataset>.results.jsonl).",
)
@click.option("--fail-under", type=float, default=None, help="Exit 1 if a target's mean is lower.")
@click.option(
    "--max-regression",
    type=float,
    default=None,
    help="Exit 1 if the 2nd target's mean is this much below the 1st's.",
)
@click.option(
    "--pairwise",
    "pairwise_rubric",
    default=None,
    help="Also judge the first two targets' answers against each other on this rubric "
    "(both orders; needs --judge-model).",
)
@click.option(
    "--markdown",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the report as Markdown (with charts) to this file.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Keep the successful results already in the results file; call only the rest.",
)
@click.option("--judge-model", default=None, help="The judge for judge scorers naming none.")
@click.option(
    "--allow-python-scorers",
    is_flag=True,
    help="Run the dataset's `python` scorers (they import and call code the file names: "
    "only for a dataset you trust).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run_cmd(
    dataset_path: Path,
    targets: tuple[str, ...],
    url: str,
    api_key: str,
    concurrency: int,
    rpm: float | None,
    no_cache: bool,
    store: str | None,
    out: Path | None,
    fail_under: float | None,
    max_regression: float | None,
    pairwise_rubric: str | None,
    markdown: Path | None,
    resume: bool,
    judge_model: str | None,
    allow_python_scorers: bool,
    as_json: bool,
) -> None:
    """Call every target with every item through the gateway, score, report, gate."""
    from sluice.eval.dataset import DatasetError, load_dataset
    from sluice.eval.results import (
        fill_costs_from_records,
        format_summary,
        gate,
        read_results,
        regressions,
        summarize,
        write_results,
    )
    from sluice.eval.runner import RunOptions, run_targets

    try:
        import openai  # noqa: F401  (the `eval` extra)
    except ImportError:
        raise click.ClickException(
            "sluice eval run calls the gateway with the openai SDK: pip install 'sluice[eval]'"
        ) from None
    try:
        items = load_dataset(dataset_path, allow_python=allow_python_scorers)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    if len(set(targets)) != len(targets):
        raise click.ClickException("each --target may be given once")
    run_id = f"{int(time.time()):x}{secrets.token_hex(3)}"
    unjudged = [
        item.id
        for item in items
        if any(s.type == "judge" and s.model is None for s in item.scorers)
    ]
    if pairwise_rubric is not None and (len(targets) < 2 or judge_model is None):
        raise click.ClickException("--pairwise needs two --target and a --judge-model")
    if unjudged and judge_model is None:
        raise click.ClickException(
            f"item {unjudged[0]!r} has a judge scorer without 'model': give --judge-model"
        )
    options = RunOptions(
        url, api_key, concurrency, no_cache, run_id=run_id, judge_model=judge_model, rpm=rpm
    )
    total = len(items) * len(targets)
    path = out or dataset_path.with_name(dataset_path.stem + ".results.jsonl")
    done = read_results(path) if resume else {}
    with (
        path.open("ab" if resume else "wb") as journal,
        click.progressbar(length=total, label="eval", file=sys.stderr) as bar,
    ):

        def keep(result: ItemResult) -> None:  # appended as they come: resumable
            journal.write(orjson.dumps(result.to_json()) + b"\n")
            journal.flush()

        results = asyncio.run(
            run_targets(items, targets, options, progress=bar.update, done=done, on_result=keep)
        )
    if store is not None:
        results = fill_costs_from_records(results, store)
        _save(store, run_id, str(dataset_path), results)
    write_results(path, results)  # the final file: in order, one line per (target, item)
    summaries = summarize(results, targets)
    worse = regressions(results, targets[0], targets[1]) if len(targets) > 1 else []
    failures = gate(summaries, fail_under=fail_under, max_regression=max_regression)
    pairwise = None
    if pairwise_rubric is not None and judge_model is not None:
        pairwise = asyncio.run(
            _pairwise(options, judge_model, pairwise_rubric, items, results, targets)
        )
    if markdown is not None:
        from sluice.eval.report import RunReport, render

        worse_by = {t: regressions(results, targets[0], t) for t in targets[1:]}
        run = RunReport(run_id, dataset_path.name, list(targets), summaries, worse_by, failures)
        report = render(run, "md")  # the same Markdown as `sluice eval report`, charts included
        markdown.write_text(report, encoding="utf-8")
    if as_json:
        doc = {
            "run_id": run_id,
            "results_file": str(path),
            "targets": [s.to_json() for s in summaries],
            "regressions": [w.to_json() for w in worse],
            "failures": failures,
            "pairwise": None if pairwise is None else pairwise.to_json(),
        }
        click.echo(orjson.dumps(doc).decode())
    else:
        click.echo(format_summary(summaries, worse, failures))
        if pairwise is not None:
            click.echo(pairwise.line())
        click.echo(f"results: {path}")
    if failures:
        sys.exit(1)


def _save(store: str, run_id: str, dataset: str, results: Sequence[ItemResult]) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from sluice.eval.result_store import EvalResultStore

    try:
        saved = EvalResultStore.open(store)
        try:
            saved.save(run_id, dataset, results)
        finally:
            saved.close()
    except SQLAlchemyError as exc:
        click.echo(f"warning: results not saved to the store: {type(exc).__name__}", err=True)


@eval_group.command("runs")
@click.option("--store", default=DEFAULT_STORE, show_default=True, help="The records store URL.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True)
def runs_cmd(store: str, limit: int, as_json: bool) -> None:
    """Eval runs saved with `sluice eval run --store`, newest first: mean and pass rate."""
    from sluice.eval.export import check_exists
    from sluice.eval.result_store import EvalResultStore
    from sluice.observe.report import ReportError

    try:
        check_exists(store)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    saved = EvalResultStore.open(store)
    try:
        summaries = saved.runs(limit)
    finally:
        saved.close()
    if as_json:
        click.echo(orjson.dumps([s.to_json() for s in summaries]).decode())
        return
    click.echo(f"{'run':<20} {'target':<28} {'items':>5} {'mean':>6} {'pass':>7}  dataset")
    for s in summaries:
        click.echo(
            f"{s.run_id:<20} {s.target[:28]:<28} {s.items:>5} {s.mean_score:>6.3f} "
            f"{s.pass_rate:>7.1%}  {s.dataset}"
        )


async def _pairwise(
    options: RunOptions,
    judge_model: str,
    rubric: str,
    items: Sequence[EvalItem],
    results: Sequence[ItemResult],
    targets: Sequence[str],
) -> PairwiseReport:
    from sluice.eval.pairwise import compare
    from sluice.eval.runner import make_client

    client = make_client(options)
    try:
        return await compare(
            client,
            judge_model,
            rubric,
            items,
            results,
            targets[0],
            targets[1],
            options.concurrency,
        )
    finally:
        await client.close()


@eval_group.command("export")
@click.option("--store", default=DEFAULT_STORE, show_default=True, help="The records store URL.")
@click.option("--since", default="24h", show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="JSONL file (default: standard output).",
)
def export_cmd(store: str, since: str, out: Path | None) -> None:
    """Feedback joined to its calls, as a labelled JSONL dataset."""
    rows = _feedback_rows(store, since)
    data = b"".join(orjson.dumps(r) + b"\n" for r in rows)
    if out is None:
        click.echo(data.decode(), nl=False)
    else:
        out.write_bytes(data)
        click.echo(f"{len(rows)} labelled rows -> {out}", err=True)


@eval_group.command("feedback")
@click.option("--store", default=DEFAULT_STORE, show_default=True, help="The records store URL.")
@click.option("--since", default="24h", show_default=True)
@click.option(
    "--by",
    default="route",
    show_default=True,
    type=click.Choice(["route", "model", "tenant", "deployment"]),
)
@click.option("--json", "as_json", is_flag=True)
def feedback_cmd(store: str, since: str, by: str, as_json: bool) -> None:
    """Feedback count, mean score and thumbs per route / model / tenant / deployment."""
    from sluice.eval.export import feedback_summary, format_summary

    groups = feedback_summary(_feedback_rows(store, since), by)
    if as_json:
        click.echo(orjson.dumps({"by": by, "groups": [g.to_json() for g in groups]}).decode())
    else:
        click.echo(format_summary(groups, by))


def _feedback_rows(store: str, since: str) -> list[dict[str, object]]:
    from sluice.eval.export import export_rows
    from sluice.observe.report import ReportError, parse_since

    try:
        return export_rows(store, parse_since(since, time.time()))
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None


@eval_group.command("report")
@click.argument("run")
@click.option(
    "--store",
    default=None,
    help="The store the run was saved in (sluice eval run --store); else RUN is a results file.",
)
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Default: stdout.")
@click.option("--fail-under", type=float, default=None, help="Exit 1 if a target's mean is lower.")
@click.option(
    "--max-regression",
    type=float,
    default=None,
    help="Exit 1 if the 2nd target's mean is this much below the 1st's.",
)
def report_cmd(
    run: str,
    store: str | None,
    fmt: str,
    out: Path | None,
    fail_under: float | None,
    max_regression: float | None,
) -> None:
    """One run as Markdown, HTML (inline SVG charts) or JSON: per-target table, charts, the
    items each candidate got worse on. RUN: a run id (with --store) or a results file."""
    from sluice.eval.report import build, load_file, render

    if store is None:
        path = Path(run)
        if not path.is_file():
            raise click.ClickException(f"no results file {run!r} (give --store for a run id)")
        try:
            results = load_file(path)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, ArithmeticError):
            raise click.ClickException(f"{run} is not a results file") from None
        run_id, dataset = path.stem.removesuffix(".results"), path.name
    else:
        loaded = _load_run(store, run)
        if loaded is None:
            raise click.ClickException(f"no eval run {run!r} in the store")
        run_id, (dataset, results) = run, loaded
    if not results:
        raise click.ClickException(f"run {run!r} has no results")
    report = build(run_id, dataset, results, fail_under=fail_under, max_regression=max_regression)
    text = render(report, fmt)
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"report -> {out}", err=True)
    if report.failures:
        sys.exit(1)


def _load_run(store: str, run_id: str) -> tuple[str, list[ItemResult]] | None:
    from sqlalchemy.exc import SQLAlchemyError

    from sluice.eval.export import check_exists
    from sluice.eval.result_store import EvalResultStore
    from sluice.observe.report import ReportError, safe_url

    try:
        check_exists(store)
        saved = EvalResultStore.open(store)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(f"cannot open {safe_url(store)}: {type(exc).__name__}") from None
    try:
        return saved.load(run_id[:64])
    finally:
        saved.close()


@eval_group.group("shadow")
def shadow_group() -> None:
    """Shadow traffic: candidate vs production answers kept from live calls."""


@shadow_group.command("report")
@click.option("--store", default=DEFAULT_STORE, show_default=True, help="The records store URL.")
@click.option("--since", default="24h", show_default=True)
@click.option("--route", default=None, help="Only this route's pairs.")
@click.option("--url", required=True, help="The running gateway, for the judge calls.")
@click.option("--api-key", envvar="SLUICE_API_KEY", default="sluice", show_default=False)
@click.option("--judge-model", required=True, help="The pairwise judge (a model or route).")
@click.option(
    "--rubric",
    default=None,
    help="What a better answer is (default: correct, relevant, complete, no unsupported claims).",
)
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--json", "as_json", is_flag=True)
def shadow_report_cmd(
    store: str,
    since: str,
    route: str | None,
    url: str,
    api_key: str,
    judge_model: str,
    rubric: str | None,
    limit: int,
    concurrency: int,
    as_json: bool,
) -> None:
    """Judge the stored shadow pairs pairwise (both orders) through the gateway: per route
    and candidate, wins / losses / ties, the candidate's error rate and latencies."""
    from sluice.eval.config import DEFAULT_RUBRIC
    from sluice.eval.export import check_exists
    from sluice.eval.live_store import LiveStore
    from sluice.observe.report import ReportError, parse_since

    try:
        check_exists(store)
        start = parse_since(since, time.time())
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None
    live = LiveStore.open(store)
    try:
        pairs = live.pairs_since(start, route, limit)
    finally:
        live.close()
    groups = asyncio.run(
        _judge_pairs(url, api_key, judge_model, rubric or DEFAULT_RUBRIC, pairs, concurrency)
    )
    if as_json:
        click.echo(orjson.dumps({"groups": [g.to_json() for g in groups]}).decode())
        return
    if not groups:
        click.echo("(no shadow pairs in this period)")
    for g in groups:
        click.echo(g.line())


async def _judge_pairs(
    url: str,
    api_key: str,
    judge_model: str,
    rubric: str,
    pairs: Sequence[ShadowPair],
    concurrency: int,
) -> list[ShadowGroup]:
    from sluice.eval.runner import RunOptions, make_client
    from sluice.eval.shadow_report import judge_pairs

    client = make_client(RunOptions(url, api_key, concurrency, False))
    try:
        return await judge_pairs(client, judge_model, rubric, pairs, concurrency)
    finally:
        await client.close()
