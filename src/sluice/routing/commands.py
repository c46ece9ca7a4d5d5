"""`sluice route train` and `sluice route evaluate`: the learned router from labelled JSONL.

    sluice route train --dataset my_traffic.jsonl --out router.npz
    sluice route evaluate --dataset my_heldout.jsonl --weights router.npz

Train fits on `--dataset` and calibrates on `--calibration` (or on a fixed quarter of the
dataset when none is given, never on rows it fitted). A route then uses the file with
`learned: {weights: router.npz, ...}`. Both commands embed every row (~4 ms a row).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sluice.embed.minilm import MiniLMEmbedder
    from sluice.routing.training import Example


def add_commands(group: click.Group) -> None:
    group.add_command(train_command)
    group.add_command(evaluate_command)


@click.command("train")
@click.option(
    "--dataset",
    type=click.Path(exists=True, dir_okay=False),
    required=True,
    help="Labelled JSONL: {prompt | messages, expected: cheap|strong}.",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Labelled JSONL the threshold is calibrated on (default: 25% of --dataset).",
)
@click.option(
    "--out", type=click.Path(dir_okay=False), default="learned_router.npz", show_default=True
)
@click.option("--l2", type=float, default=None, help="L2 penalty (default: the shipped one).")
def train_command(dataset: str, calibration: str | None, out: str, l2: float | None) -> None:
    """Fit learned-router weights on labelled prompts."""
    from sluice.routing import training
    from sluice.routing.evaluation import render, report

    penalty = training.L2 if l2 is None else l2
    try:
        examples = training.load_examples(dataset)
        if calibration is not None:
            fit_rows, calib_rows = examples, training.load_examples(calibration)
        else:
            fit_rows, calib_rows = training.split_for_calibration(examples)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    _need_both_labels(fit_rows, "the training rows")
    embedder = _embedder()
    cw = training.CONTEXT_WEIGHT
    train_f = training.features(embedder, fit_rows, cw)
    calib_f = training.features(embedder, calib_rows, cw)
    card = training.card_for(dataset, len(fit_rows), calibration, len(calib_rows), penalty)
    weights = training.fit(train_f, calib_f, penalty, card)
    threshold = weights.threshold_for(0.02)
    rep = report(training.probabilities(weights, calib_f), calib_f.labels, threshold)
    weights.card["calibration_metrics_at_2pct"] = {
        k: rep[k] for k in ("agreement", "strong_to_cheap", "simple_to_cheap", "auc")
    }
    weights.card["temperature"] = weights.temperature
    weights.save(out)
    click.echo(f"wrote {out} ({Path(out).stat().st_size} bytes)")
    click.echo(json.dumps(weights.card, indent=2))
    click.echo(render("calibration split, max_strong_to_cheap 2%", rep))
    n_strong = len(weights.calib_strong)
    if n_strong < 50:
        click.echo(
            f"warning: the calibration split has {n_strong} strong-needed rows; a 2% target "
            "rests on the lowest of them, so thresholds will be noisy (label more traffic)"
        )


@click.command("evaluate")
@click.option("--dataset", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option(
    "--weights",
    "weights_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A .npz from `sluice route train` (default: the shipped one).",
)
@click.option("--max-strong-to-cheap", type=float, default=0.02, show_default=True)
@click.option("--threshold", type=float, default=None, help="Overrides --max-strong-to-cheap.")
@click.option("--json", "as_json", is_flag=True)
def evaluate_command(
    dataset: str, weights_path: str | None, max_strong_to_cheap: float,
    threshold: float | None, as_json: bool,
) -> None:  # fmt: skip
    """Agreement, confusion matrix and calibration of learned-router weights on labelled rows."""
    from sluice.routing import training
    from sluice.routing.evaluation import render, report
    from sluice.routing.weights import LearnedWeights

    try:
        weights = LearnedWeights.load(weights_path)
        examples = training.load_examples(dataset)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    cut = threshold if threshold is not None else weights.threshold_for(max_strong_to_cheap)
    data = training.features(_embedder(), examples, weights.context_weight)
    rep = report(training.probabilities(weights, data), data.labels, cut)
    click.echo(json.dumps(rep, indent=2) if as_json else render(dataset, rep))


def _embedder() -> MiniLMEmbedder:
    from sluice.embed import EmbedderUnavailableError, get_embedder

    try:
        embedder = get_embedder()
        embedder.load()
    except EmbedderUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
    return embedder


def _need_both_labels(rows: list[Example], where: str) -> None:
    kinds = {r.strong for r in rows}
    if kinds != {True, False}:
        raise click.ClickException(f"{where} need both cheap and strong labels")
