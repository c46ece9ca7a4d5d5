"""A pure-numpy MiniLM (BERT) encoder: the reference the ONNX graph is tested against.

Also the `backend: numpy` fallback for hosts without onnxruntime. Mean pooling over real
tokens, then L2 normalisation, as sentence-transformers does for all-MiniLM-L6-v2.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sluice.embed.model_files import BertShape

F32 = npt.NDArray[np.float32]
_MASKED = np.float32(-1e9)


def _layer_norm(x: F32, gamma: F32, beta: F32, eps: float) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return np.asarray((x - mean) / np.sqrt(var + np.float32(eps)) * gamma + beta, np.float32)


def _erf(x: F32) -> F32:
    """erf to ~1e-7 (Abramowitz & Stegun 7.1.26): numpy has no erf and scipy is not needed."""
    sign = np.sign(x)
    a = np.abs(x).astype(np.float64)
    t = 1.0 / (1.0 + 0.3275911 * a)
    c = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
    poly = t * (c[0] + t * (c[1] + t * (c[2] + t * (c[3] + t * c[4]))))
    return np.asarray(sign * (1.0 - poly * np.exp(-a * a)), np.float32)


def _dense(x: F32, w: dict[str, F32], prefix: str) -> F32:
    """x @ W.T + b, as one 2-D product (a 3-D @ transposed 2-D misses BLAS and is ~20x slower)."""
    weight = w[f"{prefix}.weight"]
    flat = x.reshape(-1, x.shape[-1]) @ weight.T + w[f"{prefix}.bias"]
    return flat.reshape(*x.shape[:-1], weight.shape[0])


def _gelu(x: F32) -> F32:
    return (0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))).astype(np.float32)


def _attention(x: F32, bias: F32, w: dict[str, F32], p: str, shape: BertShape) -> F32:
    b, s, _ = x.shape
    heads, hd = shape.heads, shape.head_dim

    def project(name: str) -> F32:
        y = _dense(x, w, f"{p}.attention.self.{name}")
        return y.reshape(b, s, heads, hd).transpose(0, 2, 1, 3)

    q, k, v = project("query"), project("key"), project("value")
    scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(hd)) + bias
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, shape.hidden)
    out = _dense(context, w, f"{p}.attention.output.dense")
    return _layer_norm(
        out + x,
        w[f"{p}.attention.output.LayerNorm.weight"],
        w[f"{p}.attention.output.LayerNorm.bias"],
        shape.layer_norm_eps,
    )


def encode(
    weights: dict[str, F32],
    shape: BertShape,
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    token_type_ids: np.ndarray | None = None,
    unit: bool = True,
) -> F32:
    """[batch, seq] token ids and mask -> [batch, hidden] unit vectors (mean-pooled only with
    `unit=False`; `token_type_ids` for a pair, as the cache's pair verifier reads it)."""
    w = weights
    _, s = input_ids.shape
    types = 0 if token_type_ids is None else token_type_ids
    x = (
        w["embeddings.word_embeddings.weight"][input_ids]
        + w["embeddings.position_embeddings.weight"][:s]
        + w["embeddings.token_type_embeddings.weight"][types]
    )
    x = _layer_norm(
        x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], shape.layer_norm_eps
    )
    mask = attention_mask.astype(np.float32)
    bias = ((1.0 - mask) * _MASKED)[:, None, None, :]
    for i in range(shape.layers):
        p = f"encoder.layer.{i}"
        x = _attention(x, bias, w, p, shape)
        h = _gelu(_dense(x, w, f"{p}.intermediate.dense"))
        out = _dense(h, w, f"{p}.output.dense")
        x = _layer_norm(
            out + x,
            w[f"{p}.output.LayerNorm.weight"],
            w[f"{p}.output.LayerNorm.bias"],
            shape.layer_norm_eps,
        )
    summed = (x * mask[:, :, None]).sum(axis=1)
    pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
    if not unit:
        return np.asarray(pooled, np.float32)
    norms = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))
    return np.asarray(pooled / norms, np.float32)
