"""`EmbedConfig`: which sentence embedder to run and how much CPU it may take."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluice.config_base import Frozen


class EmbedConfig(Frozen):
    """Shared by the semantic cache and semantic routing (one model per process per config)."""

    model: Literal["all-MiniLM-L6-v2"] = "all-MiniLM-L6-v2"
    # onnx: onnxruntime (fast, ~4 ms a query); numpy: the pure-numpy reference (~3x slower),
    # for hosts where onnxruntime has no wheel.
    backend: Literal["onnx", "numpy"] = "onnx"
    # Threads onnxruntime may use inside one call; 1 keeps the event loop's core free.
    intra_op_threads: int = Field(default=1, ge=1, le=64)
    # Longer texts are cut to this many word pieces (the model was trained with 256).
    max_tokens: int = Field(default=256, ge=8, le=512)
