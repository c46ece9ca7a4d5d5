"""`VectorIndex`: exact cosine search over in-memory float32 vectors, grouped by scope.

Why brute force: one matrix-vector product over 100k x 384 float32 takes ~7 ms on one core
here (docs/bench/embed.md), exact, with O(1) inserts and deletes; an ANN index only pays off
beyond that. Each scope (tenant/model/params bucket chosen by the caller) owns one contiguous
matrix that grows by doubling and shrinks by halving, so memory follows the live entry count.
Deleting swaps the last row into the hole. Entries carry an absolute expiry; expired rows are
never returned and are dropped when a search meets them. `max_entries` bounds the total across
scopes: adding beyond it evicts the least recently used entry (a search hit counts as a use).

Vectors are L2-normalised on the way in, so a dot product is the cosine.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from sluice.cache.semantic import ann
from sluice.cache.semantic.ann import AnnGraph

__all__ = ["VectorIndex"]

_MIN_CAPACITY = 16
_F32 = npt.NDArray[np.float32]


class _Scope:
    """One scope's rows: vectors[:count], ids[:count], keys[:count], expires[:count] line up.

    `keys` are stable integers for the optional ANN graph (rows move on swap-remove).
    """

    __slots__ = ("ann", "count", "expires", "ids", "keys", "row_of_key", "vectors")

    def __init__(self, dim: int) -> None:
        self.vectors: _F32 = np.empty((_MIN_CAPACITY, dim), dtype=np.float32)
        self.expires = np.empty(_MIN_CAPACITY, dtype=np.float64)
        self.ids: list[str] = []
        self.keys: list[int] = []
        self.row_of_key: dict[int, int] = {}
        self.ann: AnnGraph | None = None
        self.count = 0

    def resize(self, capacity: int) -> None:
        vectors = np.empty((capacity, self.vectors.shape[1]), dtype=np.float32)
        vectors[: self.count] = self.vectors[: self.count]
        expires = np.empty(capacity, dtype=np.float64)
        expires[: self.count] = self.expires[: self.count]
        self.vectors, self.expires = vectors, expires

    @property
    def nbytes(self) -> int:
        graph = self.ann.nbytes if self.ann is not None else 0
        return int(self.vectors.nbytes + self.expires.nbytes) + graph


class VectorIndex:
    """Exact top-k cosine search per scope, bounded by `max_entries` (LRU), with expiry."""

    def __init__(
        self,
        dim: int,
        max_entries: int,
        clock: Callable[[], float] = time.time,
        *,
        ann_min_entries: int | None = None,
    ) -> None:
        """`ann_min_entries`: scopes at least this large also keep an HNSW graph (`ann.py`)
        for candidate search, then re-score exactly; None (default) = always exact."""
        if dim <= 0 or max_entries <= 0:
            raise ValueError("dim and max_entries must be positive")
        if ann_min_entries is not None and not ann.available():
            raise ValueError(f"ann_min_entries needs usearch: {ann.INSTALL_HINT}")
        self.dim = dim
        self.max_entries = max_entries
        self.ann_min_entries = ann_min_entries
        self._next_key = 0
        self._clock = clock
        self._scopes: dict[str, _Scope] = {}
        self._where: dict[str, tuple[str, int]] = {}  # entry id -> (scope, row)
        self._lru: OrderedDict[str, None] = OrderedDict()  # oldest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._where)

    @property
    def nbytes(self) -> int:
        """Bytes held by the vector and expiry arrays (the bulk of the index)."""
        with self._lock:
            return sum(s.nbytes for s in self._scopes.values())

    def add(self, scope: str, entry_id: str, vector: np.ndarray, expires_at: float) -> None:
        """Store (or replace) `entry_id` in `scope`; evicts least-recently-used beyond the cap."""
        unit = self._normalise(vector)
        with self._lock:
            if entry_id in self._where:
                self._remove_locked(entry_id)
            while len(self._where) >= self.max_entries:
                oldest = next(iter(self._lru))
                self._remove_locked(oldest)
            rows = self._scopes.get(scope)
            if rows is None:
                rows = self._scopes[scope] = _Scope(self.dim)
            if rows.count == rows.vectors.shape[0]:
                rows.resize(rows.count * 2)
            row = rows.count
            rows.vectors[row] = unit
            rows.expires[row] = expires_at
            rows.ids.append(entry_id)
            key = self._next_key
            self._next_key += 1
            rows.keys.append(key)
            rows.row_of_key[key] = row
            rows.count += 1
            if rows.ann is not None:
                rows.ann.add(key, unit)
            elif self.ann_min_entries is not None and rows.count >= self.ann_min_entries:
                rows.ann = AnnGraph(self.dim)
                rows.ann.add_many(np.array(rows.keys), rows.vectors[: rows.count])
            self._where[entry_id] = (scope, row)
            self._lru[entry_id] = None

    def search(
        self, scope: str, vector: np.ndarray, min_score: float, k: int = 5
    ) -> list[tuple[str, float]]:
        """Live entries of `scope` with cosine >= `min_score`, best first, at most `k`."""
        query = self._normalise(vector)
        if k <= 0:
            return []
        with self._lock:
            rows = self._scopes.get(scope)
            if rows is None or rows.count == 0:
                return []
            if rows.ann is None:  # exact: every row
                row_numbers = np.arange(rows.count)
                scores = rows.vectors[: rows.count] @ query
            else:  # graph proposes, exact re-score decides
                keys = rows.ann.candidates(query, min(rows.count, 4 * k + 16))
                row_numbers = np.array([rows.row_of_key[int(c)] for c in keys], dtype=np.int64)
                scores = rows.vectors[row_numbers] @ query
            expired = rows.expires[row_numbers] <= self._clock()
            dead = [rows.ids[row_numbers[i]] for i in np.flatnonzero(expired)]
            candidates = np.flatnonzero((scores >= min_score) & ~expired)
            if len(candidates) > k:
                top = np.argpartition(scores[candidates], -k)[-k:]
                candidates = candidates[top]
            order = candidates[np.argsort(-scores[candidates], kind="stable")]
            hits = [(rows.ids[row_numbers[i]], float(scores[i])) for i in order]
            for entry_id in dead:  # lazily drop what the search met expired
                self._remove_locked(entry_id)
            for entry_id, _ in hits:
                self._lru.move_to_end(entry_id)
            return hits

    def remove(self, entry_id: str) -> bool:
        with self._lock:
            if entry_id not in self._where:
                return False
            self._remove_locked(entry_id)
            return True

    def remove_scope_prefix(self, prefix: str) -> int:
        """Drop every entry whose scope starts with `prefix` (e.g. one tenant); returns count."""
        with self._lock:
            doomed = [name for name in self._scopes if name.startswith(prefix)]
            removed = 0
            for name in doomed:
                rows = self._scopes.pop(name)
                for entry_id in rows.ids:
                    del self._where[entry_id]
                    del self._lru[entry_id]
                removed += rows.count
            return removed

    def clear(self) -> int:
        with self._lock:
            removed = len(self._where)
            self._scopes.clear()
            self._where.clear()
            self._lru.clear()
            return removed

    def _normalise(self, vector: np.ndarray) -> _F32:
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.dim:
            raise ValueError(f"vector has {v.shape[0]} dimensions, index expects {self.dim}")
        norm = float(np.linalg.norm(v))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError("vector must be finite and non-zero")
        return v / np.float32(norm)

    def _remove_locked(self, entry_id: str) -> None:
        scope, row = self._where.pop(entry_id)
        del self._lru[entry_id]
        rows = self._scopes[scope]
        key = rows.keys[row]
        del rows.row_of_key[key]
        if rows.ann is not None:
            rows.ann.remove(key)
        last = rows.count - 1
        if row != last:  # swap the last row into the hole
            moved = rows.ids[last]
            rows.vectors[row] = rows.vectors[last]
            rows.expires[row] = rows.expires[last]
            rows.ids[row] = moved
            rows.keys[row] = rows.keys[last]
            rows.row_of_key[rows.keys[row]] = row
            self._where[moved] = (scope, row)
        rows.ids.pop()
        rows.keys.pop()
        rows.count = last
        if rows.ann is not None and self.ann_min_entries and last < self.ann_min_entries // 2:
            rows.ann = None  # small again: exact search is cheaper than keeping the graph
        if rows.count == 0:
            del self._scopes[scope]
        elif rows.vectors.shape[0] > _MIN_CAPACITY and rows.count <= rows.vectors.shape[0] // 4:
            rows.resize(max(_MIN_CAPACITY, rows.vectors.shape[0] // 2))
