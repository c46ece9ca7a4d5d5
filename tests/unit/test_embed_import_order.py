"""usearch loaded before onnxruntime made building the embedding session segfault; the index's
ANN module must import them in the safe order (a crash would take a whole test run down)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

# Not imported here: importing usearch in the test process would be the crash itself.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("usearch") is None or importlib.util.find_spec("onnxruntime") is None,
    reason="usearch or onnxruntime not installed",
)

CODE = """
from sluice.cache.semantic import ann
assert ann.available()
ann.AnnGraph(384)
from sluice.embed import get_embedder
print(get_embedder().embed_sync(["hello"]).shape)
"""


def test_ann_then_embedder_does_not_crash() -> None:
    try:
        from sluice.embed.model_files import model_dir

        model_dir()
    except Exception as exc:  # the model package is an optional extra
        pytest.skip(f"embedding model not installed: {exc}")
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(1, 384)" in done.stdout
