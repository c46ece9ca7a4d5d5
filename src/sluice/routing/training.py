"""Training the learned router from labelled JSONL (`sluice route train`), numpy only.

A row is `{"prompt": ..., "expected": "cheap"|"strong"}` (the format of
tests/data/routing_prompts.jsonl), optionally with `"history": [{"role", "content"}, ...]`;
or `{"messages": [...], "label": ...}` as recorded traffic looks. Labels accept
cheap/strong, simple/complex, 0/1 and false/true (true = the strong model is needed).

The model is L2-regularised logistic regression fitted by Newton's method (400 weights, a
few thousand rows: well under a second), then a temperature fitted on a separate
calibration split so probabilities mean what they say, and the calibration split's sorted
probabilities kept for the threshold knob. Embedding the rows is the slow part (~4 ms a row).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sluice.routing.signals import Turns, signal_vector
from sluice.routing.weights import LearnedWeights

if TYPE_CHECKING:
    from sluice.embed import Embedder

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]
CONTEXT_WEIGHT = 0.3  # the previous user turn's share in the embedded text vector
L2 = 0.3  # chosen on the calibration split (best AUC of 0.03-1.0); heldout never consulted
_STRONG = {"strong": True, "complex": True, "1": True, "true": True, "hard": True}
_CHEAP = {"cheap": False, "simple": False, "0": False, "false": False, "easy": False}


@dataclass(frozen=True, slots=True)
class Example:
    turns: Turns
    strong: bool
    family: str = ""


def load_examples(path: str | Path) -> list[Example]:
    """Rows of a labelled JSONL file; a bad row is a ValueError naming file and line."""
    out = []
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(_example(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{n}: not a labelled row ({exc})") from None
    if not out:
        raise ValueError(f"{path}: no rows")
    return out


def _example(row: dict[str, Any]) -> Example:
    label = row.get("expected", row.get("label", row.get("strong")))
    key = str(label).strip().lower()
    if key not in _STRONG and key not in _CHEAP:
        raise ValueError(f"label {label!r} is none of cheap/strong, simple/complex, 0/1")
    if "messages" in row:
        messages = row["messages"]
    else:
        messages = [*row.get("history", []), {"role": "user", "content": row["prompt"]}]
    users = [_text(m["content"]) for m in messages if m.get("role") == "user"]
    if not users or not users[-1].strip():
        raise ValueError("no user text")
    turns = Turns(
        last=users[-1],
        previous=users[-2] if len(users) > 1 else "",
        depth=len(users) - 1,
        tools=bool(row.get("tools")),
    )
    return Example(turns, _STRONG.get(key, False), str(row.get("family", "")))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI/Anthropic content parts
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    raise ValueError("message content is neither text nor a list of parts")


def embed_turns(embedder: Embedder, turns: list[Turns], context_weight: float) -> F32:
    """[n, dim] unit vectors: the last turn, nudged towards the previous one when present."""
    last = _embed_all(embedder, [t.last for t in turns])
    with_prev = [i for i, t in enumerate(turns) if t.previous]
    if with_prev:
        prev = _embed_all(embedder, [turns[i].previous for i in with_prev])
        mixed = last[with_prev] + context_weight * prev
        last[with_prev] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    return last


def _embed_all(embedder: Embedder, texts: list[str], batch: int = 32) -> F32:
    parts = [embedder.embed_sync(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    if not parts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    return np.concatenate(parts).astype(np.float32)


def signal_matrix(examples: list[Example]) -> F64:
    return np.array([signal_vector(e.turns) for e in examples], dtype=np.float64)


def fit_logistic(x: F64, y: F64, l2: float, iterations: int = 30) -> F64:
    """Weights (last one the bias, not penalised) of L2 logistic regression, by Newton."""
    xb = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(xb.shape[1])
    penalty = np.full(xb.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + penalty * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w


def fit_temperature(logits: F64, y: F64) -> float:
    """The T minimising the log loss of sigmoid(logit / T) (golden-section search)."""

    def loss(t: float) -> float:
        p = np.clip(1 / (1 + np.exp(-logits / t)), 1e-9, 1 - 1e-9)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    lo, hi = 0.05, 20.0
    g = (math.sqrt(5) - 1) / 2
    for _ in range(80):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if loss(a) < loss(b):
            hi = b
        else:
            lo = a
    return (lo + hi) / 2


@dataclass(frozen=True, slots=True)
class Features:
    embeddings: F32
    signals: F64
    labels: F64


def features(embedder: Embedder, examples: list[Example], context_weight: float) -> Features:
    emb = embed_turns(embedder, [e.turns for e in examples], context_weight)
    labels = np.array([1.0 if e.strong else 0.0 for e in examples])
    return Features(emb, signal_matrix(examples), labels)


def fit(
    train: Features,
    calib: Features,
    l2: float = L2,
    card: dict[str, Any] | None = None,
    context_weight: float = CONTEXT_WEIGHT,
) -> LearnedWeights:
    """Fit on `train`, fit the temperature and keep the calibration curve from `calib`."""
    mean = train.signals.mean(axis=0)
    spread = train.signals.std(axis=0)
    spread[spread < 1e-6] = 1.0
    x = np.hstack([train.embeddings.astype(np.float64), (train.signals - mean) / spread])
    w = fit_logistic(x, train.labels, l2)
    dim = train.embeddings.shape[1]
    draft = LearnedWeights(
        w_embed=w[:dim], w_signals=w[dim:-1], bias=float(w[-1]), signal_mean=mean,
        signal_spread=spread, temperature=1.0, context_weight=context_weight,
        calib_strong=np.zeros(0), calib_cheap=np.zeros(0), card=card or {},
    )  # fmt: skip
    raw = raw_logits(draft, calib)
    temperature = fit_temperature(raw, calib.labels) if len(set(calib.labels)) == 2 else 1.0
    probs = 1 / (1 + np.exp(-raw / temperature))
    return LearnedWeights(
        w_embed=draft.w_embed, w_signals=draft.w_signals, bias=draft.bias, signal_mean=mean,
        signal_spread=spread, temperature=temperature, context_weight=context_weight,
        calib_strong=np.sort(probs[calib.labels == 1]),
        calib_cheap=np.sort(probs[calib.labels == 0]), card=card or {},
    )  # fmt: skip


def raw_logits(weights: LearnedWeights, data: Features) -> F64:
    z = (data.signals - weights.signal_mean) / weights.signal_spread
    return (
        data.embeddings.astype(np.float64) @ weights.w_embed + z @ weights.w_signals + weights.bias
    ) / weights.temperature


def probabilities(weights: LearnedWeights, data: Features) -> F64:
    return 1 / (1 + np.exp(-raw_logits(weights, data)))


def split_for_calibration(
    examples: list[Example], share: float = 0.25
) -> tuple[list[Example], list[Example]]:
    """A fixed hash split of one file into (train, calibration) when no calibration file
    is given."""
    cut = int(share * 256)

    def held(e: Example) -> bool:
        return hashlib.blake2b(e.turns.last.encode(), digest_size=1).digest()[0] < cut

    return [e for e in examples if not held(e)], [e for e in examples if held(e)]


def card_for(
    train_path: str, n_train: int, calib_path: str | None, n_calib: int, l2: float
) -> dict[str, Any]:
    return {
        "version": datetime.now(UTC).strftime("%Y.%m.%d"),
        "model": "logistic regression on all-MiniLM-L6-v2 + 14 signals, temperature-scaled",
        "train": {"path": train_path, "rows": n_train},
        "calibration": {"path": calib_path or f"25% of {train_path}", "rows": n_calib},
        "l2": l2,
        "context_weight": CONTEXT_WEIGHT,
    }
