"""The embedding classifier: logistic regression on MiniLM sentence vectors, Platt-calibrated.

Why this shape: Sluice already ships all-MiniLM-L6-v2 (`sluice.embed`), so the classifier
costs one embedding plus a 384-wide dot product, and its weights are a few KB of package data
(`classifier.npz`, written by `python -m sluice.guardrails.injection.train`). A linear model on
frozen embeddings catches paraphrased attacks the rules do not list; its probability is
calibrated (Platt scaling fitted on out-of-fold scores of the training split) so a threshold
means what it says.

Long texts: a window of `WINDOW_CHARS` is embedded (the model reads <= 256 word pieces anyway);
texts longer than one window are scored on at most `MAX_WINDOWS` windows (evenly spread, first
and last included) and the highest probability wins, so one injected sentence in a long
document is not averaged away.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

import numpy as np
import numpy.typing as npt

WINDOW_CHARS = 512
MAX_WINDOWS = 4
WEIGHTS_FILE = "classifier.npz"

F32 = npt.NDArray[np.float32]


class SyncEmbedder(Protocol):
    """The part of `sluice.embed.MiniLMEmbedder` the classifier uses."""

    dim: int

    def embed_sync(self, texts: list[str]) -> F32: ...


@dataclass(frozen=True)
class LinearModel:
    """w·x + b, then Platt: p = sigmoid(a * logit + c)."""

    weights: F32
    bias: float
    platt_a: float
    platt_c: float
    version: str

    def probabilities(self, vectors: F32) -> npt.NDArray[np.float64]:
        logits = vectors.astype(np.float64) @ self.weights.astype(np.float64) + self.bias
        z = self.platt_a * logits + self.platt_c
        return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))

    def save(self, path: str) -> None:
        np.savez(
            path,
            weights=self.weights.astype(np.float32),
            bias=np.float64(self.bias),
            platt=np.array([self.platt_a, self.platt_c], dtype=np.float64),
            version=np.array(self.version),
        )


def load_model(path: str | None = None) -> LinearModel:
    """The shipped weights (package data) or those at `path`; raises FileNotFoundError."""
    if path is None:
        ref = resources.files("sluice.guardrails.injection").joinpath(WEIGHTS_FILE)
        with resources.as_file(ref) as real:
            return load_model(str(real))
    with np.load(path, allow_pickle=False) as data:
        platt = data["platt"]
        return LinearModel(
            weights=np.asarray(data["weights"], dtype=np.float32),
            bias=float(data["bias"]),
            platt_a=float(platt[0]),
            platt_c=float(platt[1]),
            version=str(data["version"]),
        )


def windows(text: str) -> list[str]:
    """At most MAX_WINDOWS slices of WINDOW_CHARS: the whole text when it fits one window."""
    text = text.strip()
    if len(text) <= WINDOW_CHARS:
        return [text or " "]
    last = len(text) - WINDOW_CHARS
    count = min(MAX_WINDOWS, 1 + -(-last // WINDOW_CHARS))
    starts = sorted({round(i * last / (count - 1)) for i in range(count)})
    return [text[s : s + WINDOW_CHARS] for s in starts]


class InjectionClassifier:
    """Scores text with the shipped linear model over an embedder; loads both lazily, once."""

    def __init__(self, embedder: SyncEmbedder | None = None, weights_path: str | None = None):
        self._embedder = embedder
        self._weights_path = weights_path
        self._model: LinearModel | None = None
        self._lock = threading.Lock()

    def _ready(self) -> tuple[SyncEmbedder, LinearModel]:
        if self._model is None or self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    from sluice.embed import get_embedder

                    self._embedder = get_embedder()
                if self._model is None:
                    self._model = load_model(self._weights_path)
        return self._embedder, self._model

    @property
    def model(self) -> LinearModel:
        return self._ready()[1]

    @property
    def version(self) -> str:
        return self.model.version

    def load(self) -> None:
        """Load the weights and warm the embedder now (otherwise the first call does)."""
        embedder, _ = self._ready()
        embedder.embed_sync(["warm up"])

    async def probability_async(self, text: str) -> float:
        """`probability` with the embedding off the event loop (the embedder's executor)."""
        embedder, model = self._ready()
        embed = getattr(embedder, "embed", None)
        if embed is not None:
            vectors = await embed(windows(text))
        else:
            vectors = await asyncio.to_thread(embedder.embed_sync, windows(text))
        return float(model.probabilities(vectors).max())

    def probability(self, text: str) -> float:
        """Calibrated P(injection) of the most suspicious window of `text`."""
        embedder, model = self._ready()
        vectors = embedder.embed_sync(windows(text))
        return float(model.probabilities(vectors).max())
