"""Quality of retrieval on the benchmark set: index the corpus, run each question, score.

Shared by `sluice bench retrieval` and the reranker's training-pair builder. Chunk vectors are
cached in a `.npy` beside the corpus keyed by a hash of the chunk texts and the embedder, since
embedding ~1,400 chunks takes minutes on a loaded 2-core machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sluice.embed.base import Embedder
from sluice.retrieval import metrics
from sluice.retrieval.benchdata import Question
from sluice.retrieval.chunking import chunk_text
from sluice.retrieval.index import CollectionIndex, Hit, IndexedChunk, Mode

F32 = npt.NDArray[np.float32]
CHUNK_TOKENS = 200


def corpus_chunks(docs: dict[str, str], max_tokens: int = CHUNK_TOKENS) -> list[IndexedChunk]:
    out = []
    for doc_id, text in docs.items():
        for c in chunk_text(text, max_tokens):
            out.append(
                IndexedChunk(
                    f"{doc_id}#{c.seq}",
                    doc_id,
                    doc_id,
                    c.seq,
                    c.text,
                    c.heading,
                    c.tokens,
                    {},
                    c.sentences,
                )
            )
    return out


def embed_all(embedder: Embedder, texts: Sequence[str], cache_dir: Path | None) -> F32:
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    cache = cache_dir / f"vectors-{digest}.npy" if cache_dir else None
    if cache is not None and cache.is_file():
        return np.load(cache)  # type: ignore[no-any-return]
    parts = [embedder.embed_sync(list(texts[i : i + 32])) for i in range(0, len(texts), 32)]
    vectors = np.vstack(parts) if parts else np.zeros((0, embedder.dim), np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return vectors


def build_index(
    docs: dict[str, str], embedder: Embedder, cache_dir: Path | None
) -> CollectionIndex:
    chunks = corpus_chunks(docs)
    index = CollectionIndex(embedder.dim)
    index.add(chunks, embed_all(embedder, [c.indexed_text for c in chunks], cache_dir))
    index.prepare()
    return index


@dataclass(slots=True)
class Scores:
    questions: int = 0
    recall5: float = 0.0
    recall20: float = 0.0
    mrr10: float = 0.0
    ndcg10: float = 0.0

    def add(self, ranked: Sequence[str], relevance: dict[str, int]) -> None:
        self.questions += 1
        self.recall5 += metrics.recall_at(ranked, relevance, 5)
        self.recall20 += metrics.recall_at(ranked, relevance, 20)
        self.mrr10 += metrics.mrr_at(ranked, relevance, 10)
        self.ndcg10 += metrics.ndcg_at(ranked, relevance, 10)

    def means(self) -> dict[str, float]:
        n = max(self.questions, 1)
        return {
            "recall@5": round(self.recall5 / n, 3),
            "recall@20": round(self.recall20 / n, 3),
            "MRR@10": round(self.mrr10 / n, 3),
            "nDCG@10": round(self.ndcg10 / n, 3),
        }


Reranker = Callable[[str, list[Hit]], list[Hit]]


def evaluate(
    index: CollectionIndex,
    questions: Sequence[Question],
    vectors: F32,
    mode: Mode,
    rerank: Reranker | None = None,
    depth: int = 60,
) -> Scores:
    scores = Scores()
    for question, vector in zip(questions, vectors, strict=True):
        hits = index.search(question.text, vector, depth, mode=mode)
        if rerank is not None:
            hits = rerank(question.text, hits)
        scores.add(metrics.dedupe([h.chunk.file_id for h in hits]), question.relevance)
    return scores
