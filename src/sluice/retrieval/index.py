"""`CollectionIndex`: one vector store's chunks searchable by BM25, dense cosine, and both (RRF).

In memory, per replica. Durable copies live in SQL (`store.py`); this is the search structure
rebuilt from them. Why these pieces:

- Sparse: `bm25s` (maintained, sparse-matrix BM25, Snowball stemming via PyStemmer, English
  stop words). Its index is immutable, so adds/removes mark it stale and the next query
  rebuilds it (≈1 s per 100k chunks, measured in `sluice bench retrieval`); scores come from
  `get_scores`, i.e. for every chunk, so metadata pre-filters apply *before* ranking.
- Dense: exact cosine over a float32 matrix (numpy brute force: 7 ms at 100k x 384,
  NOTES-offline.md), unit vectors from the shipped MiniLM.
- Fusion: Reciprocal Rank Fusion, `score = Σ 1 / (k + rank)` over the two ranked lists (k=60
  default, Cormack et al. 2009): no score calibration between BM25 and cosine needed.
Scores handed out are in [0, 1]: RRF divided by its maximum (rank 1 in both lists).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sluice.retrieval.filters import Predicate

Mode = Literal["bm25", "dense", "hybrid"]
F32 = npt.NDArray[np.float32]
CANDIDATES = 100  # from each list before fusion


@dataclass(frozen=True, slots=True)
class IndexedChunk:
    """A chunk as searched and returned: which file, where in it, and the file's attributes."""

    id: str
    file_id: str
    filename: str
    seq: int
    text: str
    heading: str
    tokens: int
    attributes: dict[str, Any] = field(default_factory=dict, compare=False)
    sentences: tuple[str, ...] = field(default=(), compare=False)

    @property
    def indexed_text(self) -> str:
        return f"{self.filename}\n{self.heading}\n{self.text}" if self.heading else self.text


@dataclass(slots=True)
class Hit:
    chunk: IndexedChunk
    score: float
    bm25_rank: int | None = None
    dense_rank: int | None = None
    rerank_score: float | None = None
    # The retrievers' raw scores (BM25, cosine), for the reranker's features.
    bm25_score: float | None = None
    dense_score: float | None = None


_tokenizer_lock = threading.Lock()
_stemmer: Any = None


def _stem() -> Any:
    global _stemmer
    with _tokenizer_lock:
        if _stemmer is None:
            import Stemmer

            _stemmer = Stemmer.Stemmer("english")
        return _stemmer


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased word tokens, English stop words dropped, Snowball-stemmed (bm25s)."""
    import bm25s

    out = bm25s.tokenize(
        list(texts), stopwords="en", stemmer=_stem(), return_ids=False, show_progress=False
    )
    return [list(t) for t in out]


class CollectionIndex:
    """Chunks + their vectors for one collection. Thread-safe: one lock around mutation."""

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.chunks: list[IndexedChunk] = []
        self.vectors: F32 = np.zeros((0, dim), dtype=np.float32)
        self._tokens: list[list[str]] = []
        self._bm25: Any = None
        self._vocab: dict[str, int] = {}
        self._lock = threading.RLock()
        self.version: Any = None  # the durable store's version this index reflects

    def __len__(self) -> int:
        return len(self.chunks)

    def add(self, chunks: Sequence[IndexedChunk], vectors: F32) -> None:
        if len(chunks) != len(vectors):
            raise ValueError("one vector per chunk")
        tokens = tokenize([c.indexed_text for c in chunks])
        with self._lock:
            self.chunks.extend(chunks)
            self._tokens.extend(tokens)
            self.vectors = np.vstack([self.vectors, np.asarray(vectors, dtype=np.float32)])
            self._bm25 = None

    def remove_file(self, file_id: str) -> int:
        with self._lock:
            keep = [i for i, c in enumerate(self.chunks) if c.file_id != file_id]
            removed = len(self.chunks) - len(keep)
            if removed:
                self.chunks = [self.chunks[i] for i in keep]
                self._tokens = [self._tokens[i] for i in keep]
                self.vectors = self.vectors[keep] if keep else self.vectors[:0]
                self._bm25 = None
            return removed

    def update_attributes(self, file_id: str, attributes: dict[str, Any]) -> None:
        with self._lock:
            self.chunks = [
                IndexedChunk(
                    c.id,
                    c.file_id,
                    c.filename,
                    c.seq,
                    c.text,
                    c.heading,
                    c.tokens,
                    dict(attributes),
                    c.sentences,
                )
                if c.file_id == file_id
                else c
                for c in self.chunks
            ]

    def _bm25_index(self) -> Any:
        if self._bm25 is None:
            import bm25s

            vocab: dict[str, int] = {}
            ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in self._tokens]
            retriever = bm25s.BM25()
            if ids:
                retriever.index(
                    bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False
                )
            self._bm25, self._vocab = retriever, vocab
        return self._bm25

    def prepare(self) -> None:
        """Build the BM25 index now (otherwise the first search after a change does)."""
        with self._lock:
            if self.chunks:
                self._bm25_index()

    def neighbours(self, chunk: IndexedChunk) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The sentences of the chunks just before and after `chunk` in its file."""
        before: tuple[str, ...] = ()
        after: tuple[str, ...] = ()
        for c in self.chunks:
            if c.file_id == chunk.file_id:
                if c.seq == chunk.seq - 1:
                    before = c.sentences or (c.text,)
                elif c.seq == chunk.seq + 1:
                    after = c.sentences or (c.text,)
        return before, after

    def bm25_scores(self, query: str) -> npt.NDArray[np.float64]:
        with self._lock:
            n = len(self.chunks)
            if not n:
                return np.zeros(0)
            retriever = self._bm25_index()
            ids = [self._vocab[t] for t in tokenize([query])[0] if t in self._vocab]
            if not ids:
                return np.zeros(n)
            return np.asarray(retriever.get_scores(ids), dtype=np.float64)

    def search(
        self,
        query: str,
        query_vector: F32 | None,
        limit: int,
        *,
        mode: Mode = "hybrid",
        predicate: Predicate | None = None,
        rrf_k: int = 60,
        candidates: int = CANDIDATES,
    ) -> list[Hit]:
        """Top `limit` chunks. `predicate` filters on attributes before any scoring."""
        with self._lock:
            chunks, vectors = self.chunks, self.vectors
            n = len(chunks)
            if not n or limit <= 0:
                return []
            allowed = (
                np.fromiter((predicate(c.attributes) for c in chunks), bool, n)
                if predicate is not None
                else np.ones(n, bool)
            )
            if not allowed.any():
                return []
            lists: dict[str, list[int]] = {}
            raw: dict[str, npt.NDArray[Any]] = {}
            depth = max(candidates, limit)
            if mode in ("bm25", "hybrid"):
                scores = self.bm25_scores(query)
                scores[~allowed] = -1.0
                lists["bm25"] = _top(scores, depth, positive=True)
                raw["bm25"] = scores
            if mode in ("dense", "hybrid"):
                if query_vector is None:
                    raise ValueError("dense search needs a query vector")
                cos = vectors @ np.asarray(query_vector, dtype=np.float32).reshape(-1)
                cos[~allowed] = -2.0
                lists["dense"] = [i for i in _top(cos, depth) if allowed[i]]
                raw["dense"] = cos
        return fuse(chunks, lists, limit, rrf_k, raw)


def _top(scores: npt.NDArray[Any], k: int, positive: bool = False) -> list[int]:
    k = min(k, len(scores))
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.argsort(-scores[part], kind="stable")]
    return [int(i) for i in order if not positive or scores[i] > 0]


def fuse(
    chunks: Sequence[IndexedChunk],
    lists: dict[str, list[int]],
    limit: int,
    k: int = 60,
    raw: dict[str, npt.NDArray[Any]] | None = None,
) -> list[Hit]:
    """Reciprocal Rank Fusion of ranked index lists; ties broken by chunk id (deterministic)."""
    fused: dict[int, float] = {}
    ranks: dict[str, dict[int, int]] = {}
    for name, ranked in lists.items():
        ranks[name] = {}
        for rank, i in enumerate(ranked, 1):
            fused[i] = fused.get(i, 0.0) + 1.0 / (k + rank)
            ranks[name][i] = rank
    best = len(lists) / (k + 1)
    order = sorted(fused, key=lambda i: (-fused[i], chunks[i].id))[:limit]
    return [
        Hit(
            chunks[i],
            min(1.0, fused[i] / best),
            ranks.get("bm25", {}).get(i),
            ranks.get("dense", {}).get(i),
            bm25_score=float(raw["bm25"][i]) if raw and "bm25" in raw else None,
            dense_score=float(raw["dense"][i]) if raw and "dense" in raw else None,
        )
        for i in order
    ]
