"""Learned routing without the real model: weights maths, training, evaluation, the router's
order of strategies (intent rules > learned > keywords only where unsure), fail-safe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from sluice.routing import training
from sluice.routing.evaluation import auc, report
from sluice.routing.features import text_input
from sluice.routing.signals import SIGNAL_NAMES, Turns, signal_vector
from sluice.routing.stage import build_routers
from sluice.routing.weights import LearnedWeights, sigmoid
from tests.unit.routing_fakes import DIM, WordEmbedder, config_with

HARD_WORDS = ["prove", "debug", "implement", "design", "derive", "analyse"]


def word_weights(tmp_path: Path, temperature: float = 1.0) -> Path:
    """Weights over the fake bag-of-words embedder: hard words push towards strong."""
    embedder = WordEmbedder()
    w = np.zeros(DIM)
    for word in HARD_WORDS:
        w += 12.0 * embedder.embed_sync([word])[0]
    k = len(SIGNAL_NAMES)
    weights = LearnedWeights(
        w_embed=w, w_signals=np.zeros(k), bias=-6.0, signal_mean=np.zeros(k),
        signal_spread=np.ones(k), temperature=temperature, context_weight=0.3,
        calib_strong=np.linspace(0.01, 0.99, 100), calib_cheap=np.linspace(0.0, 0.5, 100),
        card={"version": "test", "train": {"rows": 0}},
    )  # fmt: skip
    path = tmp_path / "w.npz"
    weights.save(path)
    return path


def learned_route(path: Path, **extra: object) -> dict[str, object]:
    return {
        "targets": ["gpt-4o-mini", "gpt-4o"],
        "default": "gpt-4o",
        "rules": [
            {"name": "tagged-simple", "tasks": ["chat"], "target": "gpt-4o-mini"},
            {"name": "easy-words", "keywords": ["what is", "prove"], "target": "gpt-4o-mini"},
        ],
        "learned": {"cheap": "gpt-4o-mini", "strong": "gpt-4o", "weights": str(path), **extra},
    }


def test_threshold_for_reads_the_calibration_curve(tmp_path: Path) -> None:
    weights = LearnedWeights.load(word_weights(tmp_path))
    # 100 strong rows: 2% may go cheap, so the 3rd lowest probability is the threshold.
    assert weights.threshold_for(0.02) == pytest.approx(weights.calib_strong[2])
    assert weights.threshold_for(0.0) == pytest.approx(0.01)
    assert weights.threshold_for(1.0) == 1.0
    strong, cheap = weights.share_below(weights.threshold_for(0.02))
    assert strong == pytest.approx(0.02) and 0 < cheap < 0.1


def test_weights_round_trip_and_reject_other_files(tmp_path: Path) -> None:
    path = word_weights(tmp_path)
    weights = LearnedWeights.load(path)
    vector = WordEmbedder().embed_sync(["please prove this"])[0]
    assert weights.probability(vector, [0.0] * len(SIGNAL_NAMES)) > 0.5
    terms = weights.contributions(vector, [0.0] * len(SIGNAL_NAMES))
    assert sum(t.value for t in terms) == pytest.approx(weights.logit(vector, [0.0] * 14))
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a learned-router weights file"):
        LearnedWeights.load(junk)
    np.savez(tmp_path / "other.npz", signal_names=np.array(["chars"]))
    with pytest.raises(ValueError, match="retrain"):
        LearnedWeights.load(tmp_path / "other.npz")


def test_the_shipped_weights_load_and_carry_a_model_card() -> None:
    weights = LearnedWeights.load()
    assert weights.w_embed.shape == (384,)
    assert weights.card["train"]["rows"] >= 1000
    assert 0 < weights.threshold_for(0.02) < 0.5
    assert len(weights.calib_strong) >= 50 and len(weights.calib_cheap) >= 100


def test_fit_separates_and_calibrates() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 3))
    y = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(float)
    w = training.fit_logistic(x, y, l2=1.0)
    p = 1 / (1 + np.exp(-(np.hstack([x, np.ones((400, 1))]) @ w)))
    assert ((p > 0.5) == y).mean() > 0.85  # the label noise caps it near 0.9
    # Labels drawn from sigmoid(z); logits twice too confident get a temperature near 2.
    z = rng.normal(scale=2.0, size=5000)
    drawn = (rng.random(5000) < 1 / (1 + np.exp(-z))).astype(float)
    assert training.fit_temperature(2 * z, drawn) == pytest.approx(2.0, rel=0.1)


def test_load_examples_accepts_both_row_shapes_and_names_bad_lines(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    rows = [
        {"prompt": "hi", "expected": "cheap"},
        {"prompt": "now add tests", "label": "strong",
         "history": [{"role": "user", "content": "write a parser"},
                     {"role": "assistant", "content": "ok"}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "prove it"}]}],
         "label": 1},
    ]  # fmt: skip
    good.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    examples = training.load_examples(good)
    assert [e.strong for e in examples] == [False, True, True]
    assert examples[1].turns == Turns("now add tests", "write a parser", 1)
    assert examples[2].turns.last == "prove it"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "expected": "cheap"}\n{"prompt": "y", "expected": "maybe"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: .*maybe"):
        training.load_examples(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no rows"):
        training.load_examples(empty)


class SmallEmbedder(WordEmbedder):
    """The bag-of-words fake folded to 16 dimensions (Newton on 4,096 would be slow)."""

    dim = 16

    def embed_sync(self, texts: list[str]) -> npt.NDArray[np.float32]:
        wide = super().embed_sync(texts)
        small = wide.reshape(len(texts), 16, -1).sum(axis=2)
        return np.asarray(small / np.linalg.norm(small, axis=1, keepdims=True), dtype=np.float32)


def test_train_and_calibrate_end_to_end_on_a_small_embedder() -> None:
    easy = ["what is the time", "hello there", "thanks a lot", "where is my order"]
    hard = ["prove the theorem", "debug my parser", "design a queue", "derive the formula"]
    examples = [training.Example(Turns(t), False) for t in easy * 5] + [
        training.Example(Turns(t, "earlier" if i % 2 else ""), True) for i, t in enumerate(hard * 5)
    ]
    feats = training.features(SmallEmbedder(), examples, 0.3)
    assert feats.embeddings.shape == (40, 16)
    weights = training.fit(feats, feats, l2=0.1)
    probs = training.probabilities(weights, feats)
    assert probs[feats.labels == 1].min() > probs[feats.labels == 0].max()
    rep = report(probs, feats.labels, weights.threshold_for(0.0))
    assert rep["strong_to_cheap"] == 0.0 and rep["agreement"] == 1.0


def test_report_confusion_shares_and_auc() -> None:
    probs = np.array([0.9, 0.8, 0.3, 0.1, 0.6, 0.2])
    labels = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    rep = report(probs, labels, threshold=0.5)
    assert rep["confusion"] == {
        "strong_needed": {"strong": 2, "cheap": 1},
        "simple": {"strong": 1, "cheap": 2},
    }
    assert rep["strong_to_cheap"] == pytest.approx(1 / 3)
    assert rep["simple_to_cheap"] == pytest.approx(2 / 3)
    assert rep["agreement"] == pytest.approx(4 / 6)
    assert auc(probs, labels) == pytest.approx(8 / 9)  # 0.3 ranks below 0.6 only
    assert auc(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert sum(b["n"] for b in rep["calibration"]["bins"]) == 6


def test_signals_see_code_errors_maths_and_depth() -> None:
    names = list(SIGNAL_NAMES)
    code = signal_vector(Turns("fix this:\n```\nx = f(a[0]);\n```\nTypeError: boom", tools=True))
    plain = signal_vector(Turns("where is my parcel?", "hi", 2))
    assert code[names.index("code_block")] == 1.0 and plain[names.index("code_block")] == 0.0
    assert code[names.index("error_text")] == 1.0 and code[names.index("tools")] == 1.0
    assert signal_vector(Turns("solve x^2 + 3 = 7"))[names.index("maths_symbols")] > 0
    assert plain[names.index("questions")] == 1.0 and plain[names.index("depth")] > 0


def test_confident_learned_pick_beats_a_keyword_rule(tmp_path: Path) -> None:
    config = config_with({"auto": learned_route(word_weights(tmp_path))})
    router = build_routers(config, embedder=WordEmbedder())["auto"]
    # "prove" pushes P far above the threshold: the easy-words rule must not overturn it.
    hard = router.decide_sync(text_input("prove prove prove it"))
    assert (hard.strategy, hard.target) == ("learned", "gpt-4o")
    # Far below: the cheap pick stands, and says why.
    easy = router.decide_sync(text_input("hello there friend"))
    assert (easy.strategy, easy.target) == ("learned", "gpt-4o-mini")
    assert "P(strong)=" in easy.reason and "threshold" in easy.reason


def test_keywords_decide_only_where_the_model_is_unsure(tmp_path: Path) -> None:
    route = learned_route(word_weights(tmp_path), confident_logit=50.0)  # never confident
    router = build_routers(config_with({"auto": route}), embedder=WordEmbedder())["auto"]
    decision = router.decide_sync(text_input("what is a hash"))
    assert decision.strategy == "rules" and "learned unsure" in decision.reason


def test_explicit_intent_goes_before_the_model(tmp_path: Path) -> None:
    config = config_with({"auto": learned_route(word_weights(tmp_path))})
    router = build_routers(config, embedder=WordEmbedder())["auto"]
    decision = router.decide_sync(text_input("prove prove prove", task="chat"))
    assert (decision.strategy, decision.target) == ("rules", "gpt-4o-mini")


def test_self_check_band_marks_cheap_picks_near_the_threshold(tmp_path: Path) -> None:
    route = learned_route(word_weights(tmp_path), threshold=0.5, self_check_band=20.0)
    router = build_routers(config_with({"auto": route}), embedder=WordEmbedder())["auto"]
    near = router.decide_sync(text_input("hello there friend"))
    assert near.target == "gpt-4o-mini" and near.self_check
    assert not router.decide_sync(text_input("prove prove prove")).self_check


def test_a_missing_model_fails_safe_to_the_strong_target(tmp_path: Path) -> None:
    route = learned_route(tmp_path / "missing.npz")
    router = build_routers(config_with({"auto": route}), embedder=WordEmbedder())["auto"]
    assert router.learned is None and router.learned_error
    decision = router.decide_sync(text_input("hello"))
    assert (decision.strategy, decision.target) == ("learned", "gpt-4o")
    assert "model unavailable" in decision.reason


def test_learned_targets_must_be_route_targets(tmp_path: Path) -> None:
    route = learned_route(word_weights(tmp_path))
    route["learned"] = {"cheap": "gpt-4o-mini", "strong": "claude-sonnet"}
    with pytest.raises(ValueError, match=r"learned.strong: 'claude-sonnet'"):
        config_with({"auto": route})


def test_sigmoid_is_stable_at_the_extremes() -> None:
    assert sigmoid(-1000) == 0.0 and sigmoid(1000) == 1.0 and sigmoid(0) == 0.5
