"""Fit the reranker's fusion (`models/rerank_fusion.json`) on TRAIN, choose it on DEV.

    python -m sluice.retrieval.training.fusion tests/data/retrieval            # fit + dev table
    python -m sluice.retrieval.training.fusion tests/data/retrieval --cross build/r3/ce.onnx
    python -m sluice.retrieval.training.fusion tests/data/retrieval --heldout  # ONCE, at the end

Rows: for each question, the hybrid search's top `TOP` chunks and their `rerank.features`;
label = the chunk's document's relevance grade / 2 (soft labels for the logistic loss).
TRAIN = train-split modules minus the DEV fifth (`groups.is_dev`); held-out modules are never
read except by `--heldout`, which scores the shipped model once and writes nothing.

Choice on DEV (document-level nDCG@10 after re-ranking, the benchmark's metric): the L2
strength and feature set (with / without the cross-encoder column). The chosen configuration
is then refitted on TRAIN + DEV and written with its DEV numbers in `meta`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from sluice.embed import get_embedder
from sluice.retrieval import metrics
from sluice.retrieval.benchdata import Question, load
from sluice.retrieval.evaluate import Scores, build_index, embed_all
from sluice.retrieval.index import CollectionIndex, Hit
from sluice.retrieval.rerank import (
    FEATURES,
    FUSION_NAME,
    MODEL_FEATURES,
    Fusion,
    Reranker,
    features,
    lead_cosines,
    models_dir,
)
from sluice.retrieval.training.groups import is_dev

TOP = 20
DEPTH = 60
TIE = 0.005
BASE = tuple(f for f in FEATURES if f not in MODEL_FEATURES)


@dataclass(slots=True)
class Row:
    question: Question
    hits: list[Hit]
    x: np.ndarray
    y: np.ndarray


def collect(
    index: CollectionIndex,
    questions: list[Question],
    vectors: np.ndarray,
    cross: Reranker | None,
    lead_cos: bool = True,
) -> list[Row]:
    rows = []
    for q, v in zip(questions, vectors, strict=True):
        hits = index.search(q.text, v, DEPTH, mode="hybrid")
        head = hits[:TOP]
        models = {"lead_cos": lead_cosines(q.text, head)} if lead_cos else {}
        if cross is not None:
            models["cross"] = cross.cross_logits(q.text, head)
        x = features(q.text, head, models)
        y = np.array([q.relevance.get(h.chunk.file_id, 0) / 2 for h in head], dtype=np.float64)
        rows.append(Row(q, hits, x, y))
    return rows


def fit(rows: list[Row], names: tuple[str, ...], l2: float, meta: dict[str, object]) -> Fusion:
    """L2-regularised logistic regression (Newton's method) on standardised columns."""
    cols = [FEATURES.index(f) for f in names]
    x = np.vstack([r.x[:, cols] for r in rows])
    y = np.concatenate([r.y for r in rows])
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2)
    reg[-1] = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(z @ w, -50, 50)))
        grad = z.T @ (p - y) + reg * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Fusion(
        names,
        tuple(float(v) for v in mean),
        tuple(float(v) for v in scale),
        tuple(float(v) for v in w[:-1]),
        float(w[-1]),
        meta,
    )


def fit_listwise(
    rows: list[Row], names: tuple[str, ...], l2: float, meta: dict[str, object]
) -> Fusion:
    """Softmax cross-entropy per question (ListNet, target ∝ 2^grade - 1), then a Platt
    fit (scale, bias) so the scores are probabilities again."""
    cols = [FEATURES.index(f) for f in names]
    x_all = np.vstack([r.x[:, cols] for r in rows])
    mean, scale = x_all.mean(axis=0), x_all.std(axis=0)
    scale[scale == 0] = 1.0
    groups = []
    for r in rows:
        gain = 2 ** (2 * r.y) - 1
        if gain.sum() > 0:
            groups.append(((r.x[:, cols] - mean) / scale, gain / gain.sum()))
    w = np.zeros(len(cols))
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t in range(1, 801):
        grad = l2 * w / len(groups)
        for z, target in groups:
            s = z @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            grad += z.T @ (p - target) / len(groups)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        w -= 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    # Platt: P(relevant) = sigmoid(a * s + b), fitted pointwise on the same rows.
    s_all = ((x_all - mean) / scale) @ w
    y = np.concatenate([r.y for r in rows])
    a, b = 1.0, 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(a * s_all + b, -50, 50)))
        g = np.array([((p - y) * s_all).sum(), (p - y).sum()])
        h = p * (1 - p)
        hess = np.array([[(h * s_all**2).sum(), (h * s_all).sum()], [(h * s_all).sum(), h.sum()]])
        step = np.linalg.solve(hess + 1e-9 * np.eye(2), g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return Fusion(
        names,
        tuple(float(v) for v in mean),
        tuple(float(v) for v in scale),
        tuple(float(a * v) for v in w),
        float(b),
        meta,
    )


def score(rows: list[Row], fusion: Fusion | None) -> dict[str, float]:
    """Document-level metrics with the head re-ordered by `fusion` (None: hybrid order)."""
    out = Scores()
    for r in rows:
        hits = r.hits
        if fusion is not None:
            p = fusion.probabilities(r.x)
            order = sorted(range(len(p)), key=lambda i: (-p[i], i))
            hits = [r.hits[i] for i in order] + r.hits[TOP:]
        out.add(metrics.dedupe([h.chunk.file_id for h in hits]), r.question.relevance)
    return out.means()


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data")
    ap.add_argument("--cross", type=Path, help="cross-encoder ONNX to add as a feature")
    ap.add_argument("--out", type=Path, default=models_dir() / FUSION_NAME)
    ap.add_argument("--heldout", action="store_true", help="score the shipped model, once")
    ap.add_argument("--no-lead-cos", action="store_true", help="skip the lead-embedding feature")
    args = ap.parse_args(argv)
    folder = Path(args.data)
    docs, questions = load(folder)
    embedder = get_embedder()
    cache = folder.parent.parent.parent / "build" / "retrieval"
    index = build_index(docs, embedder, cache)
    vectors = embed_all(embedder, [q.text for q in questions], cache)
    if args.heldout:
        _heldout(index, questions, vectors)
        return
    cross = Reranker(args.cross, threads=1) if args.cross else None
    chosen = [i for i, q in enumerate(questions) if not q.heldout]
    use_lead = not args.no_lead_cos
    rows = collect(index, [questions[i] for i in chosen], vectors[chosen], cross, use_lead)
    train = [r for r in rows if not is_dev(r.question.group)]
    dev = [r for r in rows if is_dev(r.question.group)]
    w = sys.stdout.write
    w(f"train {len(train)} questions, dev {len(dev)}\n")
    w(f"hybrid: train {score(train, None)}\n        dev   {score(dev, None)}\n")
    sets = [BASE, (*BASE, "lead_cos")] if use_lead else [BASE]
    if cross is not None:
        sets += [(*BASE, "cross"), (*BASE, "lead_cos", "cross")] if use_lead else [(*BASE, "cross")]
    results: list[tuple[float, tuple[str, ...], float, str]] = []
    fitters = {"pointwise": fit, "listwise": fit_listwise}
    grid: list[str] = []
    for names in sets:
        for how, fitter in fitters.items():
            for l2 in (0.1, 1.0, 10.0, 100.0):
                model = fitter(train, names, l2, {})
                d = score(dev, model)
                label = "+".join(n for n in names if n in MODEL_FEATURES) or "base"
                w(f"{label:14} {how} l2={l2:<6} train {score(train, model)['nDCG@10']} dev {d}\n")
                sys.stdout.flush()
                grid.append(f"{label} {how} l2={l2}: {d['nDCG@10']}")
                results.append((d["nDCG@10"], names, l2, how))
    # Within TIE of the best DEV score, take the most regularised (largest l2) fit: DEV has
    # 78 questions, and an under-regularised listwise fit was unstable (refitted on TRAIN +
    # DEV it ranked worse in-sample than the TRAIN-only fit did out of sample).
    top = max(r[0] for r in results)
    _, names, l2, how = max((r for r in results if r[0] >= top - TIE), key=lambda r: r[2])
    fitter = fitters[how]
    dev_model = fitter(train, names, l2, {})
    meta = {
        "fitted": datetime.now(UTC).strftime("%Y-%m-%d"),
        "l2": l2,
        "loss": how,
        "fit_on": f"TRAIN + DEV ({len(train)} + {len(dev)} questions, top {TOP} hybrid hits)",
        "dev_ndcg10_hybrid": score(dev, None)["nDCG@10"],
        "dev_ndcg10_rerank_fit_on_train": score(dev, dev_model)["nDCG@10"],
        "cross_encoder": str(args.cross.name) if args.cross and "cross" in names else None,
        "dev_grid": grid,
    }
    final = fitter(train + dev, names, l2, meta)
    meta["dev_ndcg10_refit_in_sample"] = score(dev, final)["nDCG@10"]  # a stability check
    meta["train_ndcg10_refit_in_sample"] = score(train, final)["nDCG@10"]
    args.out.write_text(final.to_json() + "\n")
    w(f"chosen {names} l2={l2}; wrote {args.out}\n{json.dumps(meta)}\n")


def _heldout(index: CollectionIndex, questions: list[Question], vectors: np.ndarray) -> None:
    from sluice.retrieval.evaluate import evaluate

    chosen = [i for i, q in enumerate(questions) if q.heldout]
    qs, vs = [questions[i] for i in chosen], vectors[chosen]
    reranker = Reranker(threads=1)

    def rerank(query: str, hits: list[Hit]) -> list[Hit]:
        return reranker.rerank(query, hits, top=TOP)

    w = sys.stdout.write
    w(f"held-out: {len(qs)} questions\n")
    for name, mode, fn in (
        ("BM25", "bm25", None),
        ("dense", "dense", None),
        ("hybrid RRF", "hybrid", None),
        ("hybrid + rerank", "hybrid", rerank),
    ):
        w(f"{name:16} {evaluate(index, qs, vs, mode, fn).means()}\n")  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1:])
