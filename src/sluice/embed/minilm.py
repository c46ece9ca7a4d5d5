"""`MiniLMEmbedder`: all-MiniLM-L6-v2 sentence vectors (384-d), offline, off the event loop.

The model loads lazily on first use, once, under a lock. Calls from the event loop run on a
dedicated single-thread executor, so embedding never blocks request handling and never
competes with itself for the core; `intra_op_threads` bounds onnxruntime's own threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from sluice.embed import graph_weights, model_files, reference
from sluice.embed.base import INSTALL_HINT, EmbedderUnavailableError
from sluice.embed.config import EmbedConfig

if TYPE_CHECKING:
    from tokenizers import Tokenizer

F32 = npt.NDArray[np.float32]
_Encode = Callable[[np.ndarray, np.ndarray], F32]


class MiniLMEmbedder:
    """Satisfies `sluice.embed.Embedder`."""

    dim = 384

    def __init__(self, config: EmbedConfig | None = None) -> None:
        self.config = config or EmbedConfig()
        self._lock = threading.Lock()
        self._tokenizer: Tokenizer | None = None
        self._encode: _Encode | None = None
        # Its one thread starts on the first `embed` call.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sluice-embed")

    @property
    def loaded(self) -> bool:
        return self._encode is not None

    def load(self) -> None:
        """Load the model now (otherwise the first call does); idempotent and thread-safe."""
        with self._lock:  # uncontended after the first call: ~100 ns
            if self._encode is None:
                self._tokenizer, self._encode = self._build()

    def _build(self) -> tuple[Tokenizer, _Encode]:
        folder = model_files.model_dir()
        shape = model_files.read_shape(folder)
        if shape.hidden != self.dim:
            raise EmbedderUnavailableError(f"{folder} is not a {self.dim}-d MiniLM model")
        weights = model_files.read_weights(folder)
        tokenizer = model_files.read_tokenizer(folder, self.config.max_tokens)
        if self.config.backend == "onnx":
            encode = self._onnx_session(weights, shape)
        else:
            encode = lambda ids, mask: reference.encode(weights, shape, ids, mask)  # noqa: E731
        return tokenizer, encode

    def _onnx_session(self, weights: dict[str, F32], shape: model_files.BertShape) -> _Encode:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EmbedderUnavailableError(f"onnxruntime is not installed; {INSTALL_HINT}") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.config.intra_op_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # The shipped weightless graph; its weights handed over in memory (graph_weights).
        feeds = graph_weights.weight_feeds(weights)
        values = [ort.OrtValue.ortvalue_from_numpy(array) for array in feeds.values()]
        options.add_external_initializers(list(feeds), values)
        session = ort.InferenceSession(
            graph_weights.graph_bytes(), options, providers=["CPUExecutionProvider"]
        )
        del feeds, values

        def encode(ids: np.ndarray, mask: np.ndarray) -> F32:
            (out,) = session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
            return np.asarray(out, dtype=np.float32)

        return encode

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """[batch, seq] int64 token ids and attention mask, padded to the longest text."""
        self.load()
        assert self._tokenizer is not None
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return ids, mask

    def embed_sync(self, texts: list[str]) -> F32:
        """Embed in the calling thread: [len(texts), 384] float32, unit length."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids, mask = self.tokenize(texts)
        assert self._encode is not None
        return self._encode(ids, mask)

    async def embed(self, texts: list[str]) -> F32:
        """Embed on the embedder's own thread, leaving the event loop free."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_sync, texts)

    def close(self) -> None:
        """Stop the executor thread; `embed_sync` keeps working, `embed` no longer does."""
        self._executor.shutdown(wait=True)
