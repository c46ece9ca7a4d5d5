"""Export the trained pair verifier to ONNX and quantise it to int8 (training side only).

    python -m sluice.cache.semantic.training.export /tmp/pv/weights.npz OUT.onnx

The graph is the MiniLM encoder `sluice.embed.onnx_graph` builds, with a `token_type_ids`
input (a pair has two segments), mean pooling over the pair's tokens and the linear head,
ending in a sigmoid: output `score` [batch], "one answer serves both" in [0, 1].

No int8 (card 1.2.0): onnxruntime's dynamic int8 quantisation made a score depend on the
CPU's integer kernels (the calibrated threshold moved 0.918 -> 0.923 between two machines)
and moved scores by up to 0.44 from the trained model's (mean 0.058, 300 calibration pairs).
Instead the file stores the MatMul weights as float16 (cast to float32 once at load) and no
embeddings at all — they were frozen in training, so the verifier feeds them from the base
model's file — and every product runs in float32: ~10 MB instead of 18 MB, and a score moves
by < 1e-5 between kernels (`portable`, BENCHMARKS.md "Semantic cache: card 1.2.0").
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from sluice.cache.semantic.verifier import EMBEDDING_FEEDS
from sluice.embed import model_files


def build_graph(weights: dict[str, np.ndarray], shape: model_files.BertShape) -> object:
    from onnx import TensorProto, helper

    from sluice.embed.onnx_graph import OPSET, _attention, _Builder, _feed_forward

    w, g = weights, _Builder()
    word = g.const("word_embeddings", w["embeddings.word_embeddings.weight"])
    positions = g.const("position_embeddings", w["embeddings.position_embeddings.weight"])
    types = g.const("token_type_embeddings", w["embeddings.token_type_embeddings.weight"])
    zero = g.const("zero_1d", np.array([0], np.int64))
    axis0 = g.const("axis0", np.array([0], np.int64))
    axis1 = g.const("axis1", np.array([1], np.int64))
    seq_len = g.op("Shape", "input_ids", start=1, end=2)
    pos = g.op("Slice", positions, zero, seq_len, axis0)
    x = g.op("Add", g.op("Gather", word, "input_ids"), pos)
    x = g.op("Add", x, g.op("Gather", types, "token_type_ids"))
    x = g.layer_norm(x, w, "embeddings.LayerNorm", shape.layer_norm_eps)
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
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
    pooled = g.op("Div", summed, g.op("Max", count, g.const("tiny", np.array(1e-9, np.float32))))
    head_w = g.const("head.weight.T", w["head.weight"].T.astype(np.float32))
    head_b = g.const("head.bias", w["head.bias"].astype(np.float32))
    logit = g.op("Add", g.op("MatMul", pooled, head_w), head_b)  # [batch, 1]
    squeezed = g.op("Squeeze", logit, axis1)
    g.nodes.append(helper.make_node("Sigmoid", [squeezed], ["score"]))
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
        for n in ("input_ids", "token_type_ids", "attention_mask")
    ]
    out = helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])
    graph = helper.make_graph(g.nodes, "pair_verifier", inputs, [out], initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return model


def portable(model: Any, weights: dict[str, np.ndarray]) -> Any:
    """Make the fp32 graph CPU-independent and small: the embeddings (never trained) become
    placeholders fed at load time from the base model's fp32 file (`verifier.EMBEDDING_FEEDS`),
    and each MatMul weight is stored as float16 behind a Cast to float32 (onnxruntime folds the
    Cast once at session start, so every product runs in float32)."""
    from onnx import TensorProto, helper, numpy_helper

    base = model_files.read_weights(model_files.model_dir())
    for source in EMBEDDING_FEEDS.values():
        if not np.array_equal(weights[source], base[source]):
            raise SystemExit(f"{source} differs from the base model: it cannot be fed from it")
    graph = model.graph
    matmul_weights = {n.input[1] for n in graph.node if n.op_type == "MatMul"}
    kept, casts = [], []
    for init in graph.initializer:
        if init.name in EMBEDDING_FEEDS:
            init.ClearField("raw_data")
            init.data_location = TensorProto.EXTERNAL
            entry = init.external_data.add()
            entry.key, entry.value = "location", "fed-in-memory-by-sluice"
            kept.append(init)
        elif init.name in matmul_weights:
            half = numpy_helper.to_array(init).astype(np.float16)
            kept.append(numpy_helper.from_array(half, f"{init.name}.f16"))
            casts.append(
                helper.make_node("Cast", [f"{init.name}.f16"], [init.name], to=TensorProto.FLOAT)
            )
        else:
            kept.append(init)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    for node in reversed(casts):
        graph.node.insert(0, node)
    return model


def export(weights_path: Path, out: Path) -> None:
    import onnx

    raw = dict(np.load(weights_path))
    layers = 1 + max(int(k.split(".")[2]) for k in raw if k.startswith("encoder.layer."))
    folder = model_files.model_dir()
    base = model_files.read_shape(folder)
    shape = model_files.BertShape(
        layers, base.hidden, base.heads, base.intermediate, base.layer_norm_eps
    )
    model = portable(build_graph(raw, shape), raw)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))


if __name__ == "__main__":
    export(Path(sys.argv[1]), Path(sys.argv[2]))
