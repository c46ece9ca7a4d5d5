"""`Reranker`: our trained cross-encoder re-scoring the fused top ~20 with a latency budget.

Why: BM25 and the bi-encoder score query and passage separately; a cross-encoder reads them
together and sees whether the passage *answers* the question. No reranker with bundled weights
installs offline (MODELS-offline.md), so Sluice ships its own: the first layers of the MiniLM
it already uses, fine-tuned on the benchmark's TRAIN questions (`training/`, model card
`models/reranker.md`), int8 ONNX run by onnxruntime on one thread; no torch at run time.

Final order: Reciprocal Rank Fusion of the hybrid order and the reranker's order, so a weak
reranker score can only move a passage, not bury the one both retrievers agree on (measured
better than the reranker alone on the train split; held-out numbers in BENCHMARKS.md).

Budget: scoring runs on the reranker's own thread; if it does not finish within
`budget_ms`, the hybrid order is returned (the thread finishes in the background and its
result is dropped), and the caller learns `skipped=True`.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sluice.embed import model_files
from sluice.embed.base import INSTALL_HINT, EmbedderUnavailableError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from sluice.retrieval.index import Hit

MODEL_NAME = "reranker.onnx"
MAX_TOKENS = 160


def models_dir() -> Path:
    return Path(str(resources.files("sluice.retrieval").joinpath("models")))


def available() -> bool:
    return (models_dir() / MODEL_NAME).is_file()


class Reranker:
    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        self.model_path = model_path or models_dir() / MODEL_NAME
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Tokenizer | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sluice-rerank")

    def load(self) -> None:
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort
                except ImportError as exc:
                    raise EmbedderUnavailableError(
                        f"onnxruntime is not installed; {INSTALL_HINT}"
                    ) from exc
                if not self.model_path.is_file():
                    raise EmbedderUnavailableError(f"reranker model {self.model_path} is missing")
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                self._tokenizer = model_files.read_tokenizer(model_files.model_dir(), MAX_TOKENS)
                self._session = ort.InferenceSession(
                    str(self.model_path), options, providers=["CPUExecutionProvider"]
                )

    def scores(self, query: str, passages: list[str], batch: int = 32) -> list[float]:
        """P(relevant) for each passage, in the calling thread."""
        self.load()
        assert self._tokenizer is not None
        out: list[float] = []
        for start in range(0, len(passages), batch):
            enc = self._tokenizer.encode_batch(
                [(query, p) for p in passages[start : start + batch]]
            )
            feed = {
                "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            }
            (scores,) = self._session.run(["score"], feed)
            out.extend(float(s) for s in np.asarray(scores).reshape(-1))
        return out

    def rerank(self, query: str, hits: list[Hit], top: int = 20, k: int = 60) -> list[Hit]:
        """The first `top` hits re-ordered (RRF of hybrid and reranker ranks), rest after."""
        head, tail = hits[:top], hits[top:]
        if len(head) < 2:
            return hits
        scores = self.scores(query, [h.chunk.indexed_text for h in head])
        order = sorted(range(len(head)), key=lambda i: -scores[i])
        rr_rank = {i: r for r, i in enumerate(order, 1)}
        fused = {i: 1 / (k + i + 1) + 1 / (k + rr_rank[i]) for i in range(len(head))}
        ranked = sorted(range(len(head)), key=lambda i: (-fused[i], i))
        best = 2 / (k + 1)
        out = [
            replace(head[i], score=min(1.0, fused[i] / best), rerank_score=scores[i])
            for i in ranked
        ]
        return out + tail

    async def arerank(
        self, query: str, hits: list[Hit], top: int = 20, budget_ms: float = 250.0
    ) -> tuple[list[Hit], bool]:
        """(`rerank` on the reranker's thread, skipped?) — the hybrid order past the budget."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self.rerank, query, hits, top)
        try:
            return await asyncio.wait_for(asyncio.shield(future), budget_ms / 1000), False
        except TimeoutError:
            future.add_done_callback(lambda f: f.exception() if not f.cancelled() else None)
            return hits, True

    def close(self) -> None:
        self._executor.shutdown(wait=False)


_shared: Reranker | None = None
_shared_lock = threading.Lock()


def get_reranker() -> Reranker:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Reranker()
        return _shared
