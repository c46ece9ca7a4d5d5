"""Rebuild src/sluice/embed/minilm.onnx, the weightless MiniLM graph shipped as package data.

Usage: .venv/bin/python scripts/build_minilm_graph.py   (needs `onnx`, in the dev extra)

The graph comes from `sluice.embed.onnx_graph.build_model`; every tensor that
`sluice.embed.graph_weights.weight_feeds` supplies at run time is turned into an external
initializer placeholder (name, type and shape kept, no data), so the file stays ~25 KB.
"""

from __future__ import annotations

import sys
from pathlib import Path

from onnx import TensorProto

from sluice.embed import model_files
from sluice.embed.graph_weights import GRAPH_FILE, weight_feeds
from sluice.embed.onnx_graph import build_model

OUT = Path(__file__).parents[1] / "src" / "sluice" / "embed" / GRAPH_FILE


def weightless_graph() -> bytes:
    folder = model_files.model_dir()
    weights = model_files.read_weights(folder)
    model = build_model(weights, model_files.read_shape(folder))
    external = set(weight_feeds(weights))
    seen = set()
    for init in model.graph.initializer:
        if init.name not in external:
            if len(init.raw_data) > 4096:
                raise SystemExit(f"{init.name} is large but not fed at run time")
            continue
        seen.add(init.name)
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        entry = init.external_data.add()
        entry.key, entry.value = "location", "fed-in-memory-by-sluice"
    if seen != external:
        raise SystemExit(f"fed but not in the graph: {sorted(external - seen)}")
    return bytes(model.SerializeToString())


if __name__ == "__main__":
    data = weightless_graph()
    OUT.write_bytes(data)
    sys.stdout.write(f"{OUT}: {len(data)} bytes\n")
