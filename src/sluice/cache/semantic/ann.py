"""Optional approximate candidate search (usearch HNSW) for large scopes of a `VectorIndex`.

Exact numpy search reads every stored vector per query (~150 MB at 100k x 384 float32): 7 ms
on an idle core, 20-35 ms on a busy one (docs/bench/embed.md). Above `ann_min_entries` rows a
scope also keeps an HNSW graph (int8, cosine) that proposes candidates in well under a
millisecond; `VectorIndex` then re-scores them exactly, so scores stay true cosines. Costs:
an insert takes ~1-2 ms (HNSW link-up) and the graph ~0.5 KB per entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INSTALL_HINT = "pip install usearch (or leave ann_min_entries unset for exact search only)"


def available() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


class AnnGraph:
    """Integer-keyed HNSW graph over unit vectors; single-threaded like the rest of a lookup."""

    __slots__ = ("_index",)

    def __init__(self, dim: int) -> None:
        from usearch.index import Index

        self._index: Any = Index(ndim=dim, metric="cos", dtype="i8")

    def add_many(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys):
            self._index.add(keys.astype(np.uint64), vectors, threads=1)

    def add(self, key: int, vector: np.ndarray) -> None:
        self._index.add(key, vector, threads=1)

    def remove(self, key: int) -> None:
        self._index.remove(key)

    def candidates(self, query: np.ndarray, count: int) -> np.ndarray:
        """Keys of up to `count` nearest vectors (approximate)."""
        found = self._index.search(query, count, threads=1)
        return np.asarray(found.keys, dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return int(self._index.memory_usage)
