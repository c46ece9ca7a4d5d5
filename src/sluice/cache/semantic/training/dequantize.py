"""Turn a shipped verifier back into a `weights.npz` warm start (training side only).

    python -m sluice.cache.semantic.training.dequantize MODEL.onnx OUT/weights.npz

The fp32 weights of a training run are not kept; the int8 ONNX file is. Each quantised
weight is `(q - zero_point) * scale` (per output channel), a float16 one (card >= 1.2) is
widened to float32, the rest is read as stored. The
embeddings, frozen in every run, come from the base model's fp32 file instead, so only the
fine-tuned layers and the head carry the int8 rounding (< 0.5% of each weight's range).
`train.py --init OUT/weights.npz` then continues from the shipped model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from sluice.embed import model_files


def dequantize(model_path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path), load_external_data=False)
    init = {  # card >= 1.2 feeds the embeddings at load: those are read from the base below
        i.name: numpy_helper.to_array(i)
        for i in model.graph.initializer
        if i.data_location != onnx.TensorProto.EXTERNAL
    }
    out: dict[str, np.ndarray] = {}
    for name, half in init.items():  # card >= 1.2: float16 MatMul weights, no int8
        if name.endswith(".weight.T.f16"):
            out[name.removesuffix(".T.f16")] = np.ascontiguousarray(half.astype(np.float32).T)
    for name, q in init.items():
        if not name.endswith("_quantized"):
            continue
        base = name.removesuffix("_quantized")
        scale, zero = init[f"{base}_scale"], init[f"{base}_zero_point"]
        value = q.astype(np.float32) - zero.astype(np.float32).reshape(-1)
        if scale.size > 1 and scale.shape[0] == q.shape[-1]:
            w = value * scale.astype(np.float32)  # per output column: [in, out]
        elif scale.size > 1:
            w = value * scale.astype(np.float32).reshape(-1, 1)  # per row
        else:
            w = value * float(scale.reshape(-1)[0])
        if base.endswith(".weight.T"):
            out[base.removesuffix(".T")] = np.ascontiguousarray(w.T)
    for name, value in init.items():
        if name.endswith((".bias", ".weight")) and name not in out:
            out[name] = value.astype(np.float32)
    base_weights = model_files.read_weights(model_files.model_dir())
    for name in (
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
    ):
        out[name] = np.asarray(base_weights[name], np.float32)
    out["head.weight"] = out["head.weight"].reshape(1, -1)
    out["head.bias"] = out["head.bias"].reshape(1)
    return out


def main(argv: list[str]) -> None:
    weights = dequantize(Path(argv[0]))
    out = Path(argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **weights)  # type: ignore[arg-type]
    sys.stdout.write(f"{len(weights)} tensors -> {out}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
