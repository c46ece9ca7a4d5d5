"""The shipped pair verifier (the real ONNX model, loaded once for the module): model card
intact, identical questions pass, the issue's look-alikes are refused, `sluice cache explain`,
scores are the float32 math of the weights (no CPU-dependent int8 kernels)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sluice.cache.semantic.explain import explain
from sluice.cache.semantic.verifier import (
    MODEL_NAME,
    ModelCard,
    PairVerifier,
    file_sha256,
    models_dir,
)
from sluice.cli import main


@pytest.fixture(scope="module")
def verifier() -> Iterator[PairVerifier]:
    v = PairVerifier()
    try:
        v.load()
    except Exception as exc:
        pytest.skip(f"the pair verifier cannot load here ({exc!r})")
    yield v
    v.close()


def test_the_model_card_names_the_shipped_file() -> None:
    card = ModelCard.load()
    path = models_dir() / MODEL_NAME
    assert card.sha256 == file_sha256(path)
    assert card.raw["bytes"] == path.stat().st_size
    assert len(card.calibration_negatives) > 1000
    assert card.raw["decision"]["default_false_hit_rate"] == 0.005


def test_identical_questions_are_served_and_a_score_is_the_pairs_alone(
    verifier: PairVerifier,
) -> None:
    for q in ("How do I reset my password?", "Can I bring a laptop in my carry-on bag?"):
        verdict, _ = explain(q, q)
        assert verdict.serve and verdict.tier == "normalized"
        assert verifier.score(q, q) > 0.9  # the model itself does not fall for the artefact
    q = "Do you ship to Canada?"
    candidates = ["Is shipping to Canada available?", "Do you ship to Mexico? Asking for a friend"]
    together = verifier.scores(q, candidates)  # the same as one at a time, to the bit
    assert together == [verifier.score(q, c) for c in candidates]


@pytest.mark.parametrize(
    ("stored", "question"),
    [
        ("Can I return a blender within 14 days?", "Can I return a blender after 14 days?"),
        (
            "Which drinks should I avoid with a sore throat?",
            "Which drinks should I have with a sore throat?",
        ),
        (
            "I received the invoice but was not charged",
            "I was charged but did not receive the invoice",
        ),
        ("What time is check-in at the hotel?", "What time is check-out at the hotel?"),
        (
            "Who was the first person to walk on the Moon?",
            "Who was the second person to walk on the Moon?",
        ),
    ],
)
def test_the_issues_look_alikes_are_not_served(
    verifier: PairVerifier, stored: str, question: str
) -> None:
    verdict, _ = explain(stored, question)
    assert not verdict.serve, verdict.describe()


def test_cache_explain_prints_the_decision(verifier: PairVerifier) -> None:
    result = CliRunner().invoke(
        main, ["cache", "explain", "How do I reset my password?", "how do I reset my password"]
    )
    assert result.exit_code == 0, result.output
    assert "SERVE (normalized)" in result.output and "verifier:" in result.output


def test_bench_reports_before_and_after_on_a_small_pair_file(
    verifier: PairVerifier, tmp_path: Path
) -> None:
    from sluice.cache.semantic.bench import run

    rows = [
        {"a": "How do I reset my password?", "b": "how do i reset my password", "label": 1,
         "kind": "trivial"},
        {"a": "Do you ship to Canada?", "b": "Do you ship to Canada?", "label": 1,
         "kind": "identical"},
        {"a": "Can I return a blender within 14 days?",
         "b": "Can I return a blender after 14 days?", "label": 0, "kind": "preposition"},
        {"a": "Is Python 3.11 faster than 3.10?", "b": "Is Python 3.12 faster than 3.10?",
         "label": 0, "kind": "number"},
    ]  # fmt: skip
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = json.loads(run(str(path), 0.005, 50, 5, True))
    after = report["after_v2"]
    assert after["trivial_served"] == 1.0 and after["lookalikes_served"] == 0.0
    assert report["before_v1_cosine_0.95_guard"]["pairs"] == 4
    assert report["latency"]["lookups"] == 5 and report["latency"]["p50_ms"] > 0


def test_a_score_is_the_float32_math_not_the_cpus_int8_kernels(verifier: PairVerifier) -> None:
    """Card 1.2: the shipped model runs in float32, so its scores match a plain numpy
    forward pass of the same weights to ~1e-5 on any CPU. Card 1.1's int8 model quantised
    activations at run time; its scores moved by up to 0.44 from this math and with the
    CPU's integer kernels (the calibrated threshold moved 0.918 -> 0.923 between machines)."""
    pytest.importorskip("onnx")
    from sluice.cache.semantic.training.dequantize import dequantize
    from sluice.embed import model_files, reference

    weights = dequantize(models_dir() / MODEL_NAME)
    folder = model_files.model_dir()
    shape = model_files.read_shape(folder)
    layers = 1 + max(int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer."))
    shape = model_files.BertShape(
        layers, shape.hidden, shape.heads, shape.intermediate, shape.layer_norm_eps
    )
    tokenizer = model_files.read_tokenizer(folder, 96)
    pairs = [
        ("How do I reset my password?", "I forgot my password, how can I set a new one?"),
        ("Can I return a blender within 14 days?", "Can I return a blender after 14 days?"),
        ("Is it cheaper to buy or rent a house?", "Does renting a home cost less than buying?"),
        ("Which drinks should I avoid with a sore throat?", "What not to drink for a sore throat"),
        ("What time is check-in at the hotel?", "What time is check-out at the hotel?"),
        ("How do I undo my last commit in git?", "git: take back the previous commit"),
    ]  # fmt: skip
    for question, stored in pairs:
        e = tokenizer.encode(question, stored)
        pooled = reference.encode(
            weights,
            shape,
            np.array([e.ids]),
            np.array([e.attention_mask]),
            np.array([e.type_ids]),
            unit=False,
        )
        logit = float((pooled @ weights["head.weight"].T + weights["head.bias"])[0, 0])
        expected = 1.0 / (1.0 + np.exp(-logit))
        assert verifier.score(question, stored) == pytest.approx(expected, abs=2e-4)


def test_loading_reads_only_the_base_models_embeddings(
    verifier: PairVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """review4: `_embedding_feeds` (read the three embedding tensors alone) was written but
    never called: loading read all six layers of the base model (`read_weights`)."""
    from sluice.embed import model_files

    def whole_file(_folder: Path) -> dict[str, np.ndarray]:
        raise AssertionError("the whole base model was read")

    monkeypatch.setattr(model_files, "read_weights", whole_file)
    fresh = PairVerifier()
    try:
        fresh.load()
        assert fresh.score("how do I reset my password", "how do I reset my password") == (
            verifier.score("how do I reset my password", "how do I reset my password")
        )
    finally:
        fresh.close()
