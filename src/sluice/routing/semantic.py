"""Semantic routing: the request's embedding against one centroid per target.

Centroids are the normalised mean of each target's example embeddings, computed once (in a
thread, on first use or at start-up). A query costs one embedding (~4 ms on one core with
onnxruntime) and a [targets x 384] product.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluice.routing.config import SemanticConfig

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from sluice.embed import Embedder


@dataclass(frozen=True, slots=True)
class SemanticMatch:
    target: str
    similarity: float
    margin: float  # over the runner-up centroid (2.0 when there is none)


class SemanticRouter:
    def __init__(self, config: SemanticConfig, embedder: Embedder) -> None:
        self._cfg = config
        self._embedder = embedder
        self._targets = list(config.examples)
        self._centroids: npt.NDArray[np.float32] | None = None
        self._lock = threading.Lock()

    def prepare_sync(self) -> None:
        """Embed the examples and build the centroids (blocking; idempotent)."""
        import numpy as np

        with self._lock:
            if self._centroids is not None:
                return
            rows = []
            for target in self._targets:
                vectors = self._embedder.embed_sync(self._cfg.examples[target])
                mean = vectors.mean(axis=0)
                rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
            self._centroids = np.stack(rows).astype(np.float32)

    async def prepare(self) -> None:
        if self._centroids is None:
            await asyncio.to_thread(self.prepare_sync)

    def match_vector(self, vector: npt.NDArray[np.float32]) -> SemanticMatch | None:
        """The nearest centroid when it clears the floor and margin; else None."""
        assert self._centroids is not None, "prepare() first"
        sims = self._centroids @ vector
        order = sims.argsort()[::-1]
        best = float(sims[order[0]])
        margin = best - float(sims[order[1]]) if len(order) > 1 else 2.0
        if best < self._cfg.min_similarity or margin < self._cfg.min_margin:
            return None
        return SemanticMatch(self._targets[int(order[0])], best, margin)

    def nearest_sync(self, text: str) -> tuple[SemanticMatch | None, float]:
        """Blocking match, with the best similarity seen (for explanations)."""
        self.prepare_sync()
        vector = self._embedder.embed_sync([text])[0]
        assert self._centroids is not None
        return self.match_vector(vector), float((self._centroids @ vector).max())

    async def nearest(self, text: str) -> tuple[SemanticMatch | None, float]:
        await self.prepare()
        vector = (await self._embedder.embed([text]))[0]
        assert self._centroids is not None
        return self.match_vector(vector), float((self._centroids @ vector).max())
