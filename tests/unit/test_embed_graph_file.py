"""The MiniLM graph ships as package data without weights: the running embedder never needs
the `onnx` package, and the shipped file is what scripts/build_minilm_graph.py builds."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.embed import graph_weights, model_files

ROOT = Path(__file__).parents[2]


def _have_model() -> bool:
    try:
        model_files.model_dir()
    except Exception:
        return False
    return importlib.util.find_spec("onnxruntime") is not None


pytestmark = pytest.mark.skipif(not _have_model(), reason="semantic extra or weights missing")


def test_the_shipped_graph_is_small_and_weightless() -> None:
    assert len(graph_weights.graph_bytes()) < 150_000  # the weights are ~90 MB


def test_the_embedder_runs_without_the_onnx_package() -> None:
    code = (
        "import sys; sys.modules['onnx'] = None\n"  # any `import onnx` now fails
        "import numpy as np\n"
        "from sluice.embed import EmbedConfig, get_embedder\n"
        "texts = ['How do I reset my password?', 'ok']\n"
        "fast = get_embedder().embed_sync(texts)\n"
        "ref = get_embedder(EmbedConfig(backend='numpy')).embed_sync(texts)\n"
        "assert fast.shape == (2, 384) and float(np.abs(fast - ref).max()) < 1e-4\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx (dev extra) missing")
def test_the_shipped_graph_is_what_the_build_script_makes() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from build_minilm_graph import weightless_graph  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    assert weightless_graph() == graph_weights.graph_bytes()
