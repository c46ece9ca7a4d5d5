"""`Reranker`: a learned re-scoring of the fused top ~20, with a latency budget.

Why this shape: BM25 and the bi-encoder each rank well on their own and RRF throws away
everything but their ranks. The reranker puts back what RRF drops — both ranks *and* how far
apart they are, how much of the query each passage covers (weighted by how rare each query
term is among the candidates, a local IDF), whether the words hit the passage's lead (title,
heading, first line), whether the passage opens its document, how many candidates come from the
same document — and, when the shipped cross-encoder is installed, its score for the pair.
A logistic model over these features (`models/rerank_fusion.json`, fitted on the benchmark's
TRAIN questions, chosen on DEV; training in `training/fusion.py`, model card
`models/README.md`) gives P(relevant) per passage; the head is re-ordered by it. This is the
standard production recipe (learning-to-rank over retriever features plus a cross-encoder
score) and costs ~1 ms without the cross-encoder.

Scores: each re-ranked hit's `score` and `rerank_score` are that probability (so
`score_threshold` keeps its [0, 1] meaning); hits past the head keep their RRF score.

Budget: scoring runs on the reranker's own thread; if it does not finish within `budget_ms`,
the hybrid order is returned (the thread finishes in the background and its result is
dropped), and the caller learns `skipped=True`. No torch at run time: numpy, and onnxruntime
for the optional cross-encoder.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from sluice.embed import model_files
from sluice.embed.base import INSTALL_HINT, EmbedderUnavailableError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from sluice.retrieval.index import Hit, IndexedChunk

F64 = npt.NDArray[np.float64]
MODEL_NAME = "reranker.onnx"
FUSION_NAME = "rerank_fusion.json"
MAX_TOKENS = 64
RANK_CAP = 101  # a list's rank when the chunk is not in it (the index takes 100 per list)

FEATURES = (
    "position",  # log(1 + position in the hybrid order)
    "rrf",  # the RRF score, normalised to [0, 1]
    "bm25_rank",  # log rank in BM25's list (RANK_CAP when absent)
    "dense_rank",  # log rank in the dense list (RANK_CAP when absent)
    "rank_gap",  # |log bm25 rank - log dense rank|: the retrievers disagree
    "bm25_top",  # 1 / BM25 rank (0 when absent): the head of a list counts most
    "dense_top",  # 1 / dense rank (0 when absent)
    "bm25_score",  # log(1 + BM25 score)
    "bm25_rel",  # BM25 score / the head's best BM25 score
    "dense_cos",  # cosine of query and passage vectors
    "dense_gap",  # the head's best cosine minus this one
    "coverage",  # share of the query's (stemmed, stop-word-free) terms in the passage
    "idf_coverage",  # the same, each term weighted by its rarity among the candidates
    "lead_coverage",  # idf-weighted share of the query's terms in the passage's lead
    "lead_partial",  # idf-weighted share of query terms inside the lead's words (get|size)
    "bigrams",  # share of the query's adjacent term pairs adjacent in the passage too
    "first_chunk",  # the passage opens its document
    "file_hits",  # log of how many candidates come from the same document
    "length",  # log of the passage's length in terms
    "lead_cos",  # cosine of the query and the passage's lead, embedded on their own
    "cross",  # cross-encoder logit (only when the fusion was fitted with it)
)
MODEL_FEATURES = ("lead_cos", "cross")  # need a model run per passage; the rest is arithmetic


_local = threading.local()


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """`index.tokenize` (same stop words and Snowball stemming) with this thread's own stemmer:
    PyStemmer objects are not meant to be shared between threads."""
    import bm25s
    import Stemmer

    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    out = bm25s.tokenize(
        list(texts), stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
    )
    return [list(t) for t in out]


def models_dir() -> Path:
    return Path(str(resources.files("sluice.retrieval").joinpath("models")))


def available() -> bool:
    return (models_dir() / FUSION_NAME).is_file()


def _lead(chunk: IndexedChunk) -> str:
    """What a passage is about: its file's name, its heading and its first sentence."""
    first = chunk.sentences[0] if chunk.sentences else chunk.text[:200]
    return f"{chunk.filename}\n{chunk.heading}\n{first}"


def features(
    query: str, head: Sequence[Hit], models: Mapping[str, Sequence[float]] | None = None
) -> F64:
    """One row of `FEATURES` per hit; `MODEL_FEATURES` columns come from `models` (else 0)."""
    n = len(head)
    texts = [h.chunk.indexed_text for h in head]
    toks = tokenize([query, *texts, *(_lead(h.chunk) for h in head)])
    q_terms = list(dict.fromkeys(toks[0]))
    bodies = [set(t) for t in toks[1 : n + 1]]
    leads = [set(t) for t in toks[n + 1 :]]
    lead_text = [_lead(h.chunk).lower() for h in head]
    q_pairs = set(itertools.pairwise(toks[0]))
    pairs = [set(itertools.pairwise(t)) for t in toks[1 : n + 1]]
    df = {t: sum(1 for b in bodies if t in b) for t in q_terms}
    idf = {t: math.log((n + 1) / (df[t] + 0.5)) for t in q_terms}
    idf_total = sum(idf.values()) or 1.0
    bm25 = [max(h.bm25_score or 0.0, 0.0) for h in head]
    cos = [h.dense_score or 0.0 for h in head]
    best_bm25, best_cos = max(bm25) or 1.0, max(cos)
    per_file: dict[str, int] = {}
    for h in head:
        per_file[h.chunk.file_id] = per_file.get(h.chunk.file_id, 0) + 1
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    for i, hit in enumerate(head):
        b_rank = math.log(hit.bm25_rank or RANK_CAP)
        d_rank = math.log(hit.dense_rank or RANK_CAP)
        body, lead = bodies[i], leads[i]
        out[i] = (
            math.log1p(i),
            hit.score,
            b_rank,
            d_rank,
            abs(b_rank - d_rank),
            1 / hit.bm25_rank if hit.bm25_rank else 0.0,
            1 / hit.dense_rank if hit.dense_rank else 0.0,
            math.log1p(bm25[i]),
            bm25[i] / best_bm25,
            cos[i],
            best_cos - cos[i],
            sum(1 for t in q_terms if t in body) / max(len(q_terms), 1),
            sum(idf[t] for t in q_terms if t in body) / idf_total,
            sum(idf[t] for t in q_terms if t in lead) / idf_total,
            sum(idf[t] for t in q_terms if len(t) >= 3 and t in lead_text[i]) / idf_total,
            len(q_pairs & pairs[i]) / len(q_pairs) if q_pairs else 0.0,
            1.0 if hit.chunk.seq == 0 else 0.0,
            math.log(per_file[hit.chunk.file_id]),
            math.log1p(len(toks[i + 1])),
            0.0,
            0.0,
        )
    for name, values in (models or {}).items():
        out[:, FEATURES.index(name)] = values
    return out


def lead_cosines(query: str, head: Sequence[Hit]) -> list[float]:
    """The shared MiniLM on the query and each passage's lead (one batch, ~30 tokens each)."""
    from sluice.embed import get_embedder

    vectors = get_embedder().embed_sync([query, *(_lead(h.chunk) for h in head)])
    return [float(v) for v in vectors[1:] @ vectors[0]]


@dataclass(frozen=True, slots=True)
class Fusion:
    """Logistic model over standardised `FEATURES` (columns not listed weigh 0)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    meta: dict[str, Any]

    @property
    def uses_cross(self) -> bool:
        return "cross" in self.features

    @property
    def uses_embedder(self) -> bool:
        return "lead_cos" in self.features

    def columns(self) -> list[int]:
        return [FEATURES.index(f) for f in self.features]

    def logits(self, x: F64) -> F64:
        z = (x[:, self.columns()] - np.asarray(self.mean)) / np.asarray(self.scale)
        return z @ np.asarray(self.weights) + self.bias  # type: ignore[no-any-return]

    def probabilities(self, x: F64) -> F64:
        return 1.0 / (1.0 + np.exp(-np.clip(self.logits(x), -50, 50)))

    def to_json(self) -> str:
        body = {
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "meta": self.meta,
        }
        return json.dumps(body, indent=2)

    @classmethod
    def from_json(cls, text: str) -> Fusion:
        raw = json.loads(text)
        names = tuple(raw["features"])
        unknown = [f for f in names if f not in FEATURES]
        sizes = {len(names), len(raw["mean"]), len(raw["scale"]), len(raw["weights"])}
        if unknown or len(sizes) != 1:
            raise ValueError(f"bad rerank fusion model (unknown features {unknown})")
        return cls(
            names,
            tuple(float(v) for v in raw["mean"]),
            tuple(float(v) or 1.0 for v in raw["scale"]),
            tuple(float(v) for v in raw["weights"]),
            float(raw["bias"]),
            dict(raw.get("meta", {})),
        )


class Reranker:
    def __init__(
        self,
        model_path: Path | None = None,
        threads: int = 1,
        fusion: Fusion | None = None,
    ) -> None:
        self.model_path = model_path or models_dir() / MODEL_NAME
        self.threads = threads
        self._fusion = fusion
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Tokenizer | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sluice-rerank")

    @property
    def fusion(self) -> Fusion:
        with self._lock:
            if self._fusion is None:
                path = models_dir() / FUSION_NAME
                if not path.is_file():
                    raise EmbedderUnavailableError(f"rerank model {path} is missing")
                self._fusion = Fusion.from_json(path.read_text())
            return self._fusion

    def load(self) -> None:
        """Load the cross-encoder (only needed when the fusion uses its score)."""
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
        """Cross-encoder P(relevant) for each passage, in the calling thread."""
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

    def cross_logits(self, query: str, head: Sequence[Hit]) -> list[float]:
        probs = self.scores(query, [h.chunk.indexed_text for h in head])
        return [math.log(max(p, 1e-6) / max(1 - p, 1e-6)) for p in probs]

    def model_features(
        self, query: str, head: Sequence[Hit], names: Sequence[str]
    ) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        if "cross" in names:
            out["cross"] = self.cross_logits(query, head)
        if "lead_cos" in names:
            out["lead_cos"] = lead_cosines(query, head)
        return out

    def probabilities(self, query: str, head: Sequence[Hit]) -> F64:
        fusion = self.fusion
        return fusion.probabilities(
            features(query, head, self.model_features(query, head, fusion.features))
        )

    def rerank(self, query: str, hits: list[Hit], top: int = 20, k: int = 60) -> list[Hit]:
        """The first `top` hits re-ordered by the fusion's P(relevant), the rest after."""
        del k  # kept for callers of the RRF-era signature
        head, tail = hits[:top], hits[top:]
        if len(head) < 2:
            return hits
        probs = self.probabilities(query, head)
        ranked = sorted(range(len(head)), key=lambda i: (-probs[i], i))
        out = [
            replace(head[i], score=float(probs[i]), rerank_score=float(probs[i])) for i in ranked
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
