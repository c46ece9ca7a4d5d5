"""Build the MiniLM (BERT encoder + mean pooling + L2 norm) ONNX graph (dev time only).

The graph is a few dozen nodes written with `onnx.helper`. scripts/build_minilm_graph.py
turns it into the weightless `minilm.onnx` shipped as package data (`graph_weights`); the
running gateway never imports this module nor `onnx`. onnxruntime's own optimiser fuses
LayerNorm, GELU and attention patterns at load.
Inputs: `input_ids`, `attention_mask` (int64, [batch, seq]); output `embedding` [batch, hidden].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sluice.embed.model_files import BertShape

if TYPE_CHECKING:
    import numpy.typing as npt
    import onnx

OPSET = 17  # LayerNormalization is a standard op from 17


class _Builder:
    """Collects nodes and initializers; each `op` call returns its output name."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self._helper, self._numpy_helper = helper, numpy_helper
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._n = 0

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(self._numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(self._helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def linear(self, x: str, w: dict[str, npt.NDArray[np.float32]], prefix: str) -> str:
        weight = self.const(f"{prefix}.weight.T", w[f"{prefix}.weight"].T)
        bias = self.const(f"{prefix}.bias", w[f"{prefix}.bias"])
        return self.op("Add", self.op("MatMul", x, weight), bias)

    def layer_norm(
        self, x: str, w: dict[str, npt.NDArray[np.float32]], prefix: str, eps: float
    ) -> str:
        gamma = self.const(f"{prefix}.weight", w[f"{prefix}.weight"])
        beta = self.const(f"{prefix}.bias", w[f"{prefix}.bias"])
        return self.op("LayerNormalization", x, gamma, beta, axis=-1, epsilon=eps)


def _attention(
    g: _Builder, x: str, bias: str, w: dict[str, npt.NDArray[np.float32]], p: str, shape: BertShape
) -> str:
    split = g.const(f"{p}.split_heads", np.array([0, 0, shape.heads, shape.head_dim], np.int64))
    merge = g.const(f"{p}.merge_heads", np.array([0, 0, shape.hidden], np.int64))

    def heads(name: str, perm: list[int]) -> str:
        y = g.linear(x, w, f"{p}.attention.self.{name}")
        return g.op("Transpose", g.op("Reshape", y, split), perm=perm)

    q = heads("query", [0, 2, 1, 3])  # [b, h, s, d]
    k = heads("key", [0, 2, 3, 1])  # [b, h, d, s]
    v = heads("value", [0, 2, 1, 3])
    scale = g.const(f"{p}.scale", np.array(1.0 / np.sqrt(shape.head_dim), np.float32))
    scores = g.op("Add", g.op("Mul", g.op("MatMul", q, k), scale), bias)
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
    merged = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), merge)
    out = g.linear(merged, w, f"{p}.attention.output.dense")
    return g.layer_norm(
        g.op("Add", out, x), w, f"{p}.attention.output.LayerNorm", shape.layer_norm_eps
    )


def _feed_forward(
    g: _Builder, x: str, w: dict[str, npt.NDArray[np.float32]], p: str, shape: BertShape
) -> str:
    h = g.linear(x, w, f"{p}.intermediate.dense")
    root2 = g.const(f"{p}.sqrt2", np.array(np.sqrt(2.0), np.float32))
    one = g.const(f"{p}.one", np.array(1.0, np.float32))
    half = g.const(f"{p}.half", np.array(0.5, np.float32))
    erf = g.op("Erf", g.op("Div", h, root2))
    gelu = g.op("Mul", g.op("Mul", h, g.op("Add", erf, one)), half)  # exact (erf) GELU
    out = g.linear(gelu, w, f"{p}.output.dense")
    return g.layer_norm(g.op("Add", out, x), w, f"{p}.output.LayerNorm", shape.layer_norm_eps)


def build_model(weights: dict[str, npt.NDArray[np.float32]], shape: BertShape) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    w, g = weights, _Builder()
    word = g.const("word_embeddings", w["embeddings.word_embeddings.weight"])
    positions = g.const("position_embeddings", w["embeddings.position_embeddings.weight"])
    token_type = g.const("token_type_0", w["embeddings.token_type_embeddings.weight"][0])
    zero = g.const("zero_1d", np.array([0], np.int64))
    axis0 = g.const("axis0", np.array([0], np.int64))
    axis1 = g.const("axis1", np.array([1], np.int64))

    seq_len = g.op("Shape", "input_ids", start=1, end=2)  # [seq], 1-D
    pos = g.op("Slice", positions, zero, seq_len, axis0)
    x = g.op("Add", g.op("Add", g.op("Gather", word, "input_ids"), pos), token_type)
    x = g.layer_norm(x, w, "embeddings.LayerNorm", shape.layer_norm_eps)

    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)  # [b, s]
    one = g.const("one", np.array(1.0, np.float32))
    masked = g.const("masked", np.array(-1e9, np.float32))
    bias_axes = g.const("bias_axes", np.array([1, 2], np.int64))
    bias = g.op("Unsqueeze", g.op("Mul", g.op("Sub", one, mask), masked), bias_axes)

    for i in range(shape.layers):
        p = f"encoder.layer.{i}"
        x = _feed_forward(g, _attention(g, x, bias, w, p, shape), w, p, shape)

    mask3 = g.op("Unsqueeze", mask, g.const("axis2", np.array([2], np.int64)))
    summed = g.op("ReduceSum", g.op("Mul", x, mask3), axis1, keepdims=0)
    count = g.op("ReduceSum", mask, axis1, keepdims=1)
    tiny = g.const("tiny", np.array(1e-9, np.float32))
    pooled = g.op("Div", summed, g.op("Max", count, tiny))
    norm = g.op("ReduceL2", pooled, axes=[1], keepdims=1)
    eps = g.const("norm_eps", np.array(1e-12, np.float32))
    g.nodes.append(helper.make_node("Div", [pooled, g.op("Max", norm, eps)], ["embedding"]))

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    att = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])
    out = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", shape.hidden])
    graph = helper.make_graph(g.nodes, "minilm", [ids, att], [out], initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    return model
