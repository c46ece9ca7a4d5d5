"""The normalized tier's canonical form, the word-swap rule, the calibration arithmetic and
the generated pair data (splits apart, labels as the guide says)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.cache.semantic.calibration import NEVER, threshold_from_scores
from sluice.cache.semantic.guard import contrast
from sluice.cache.semantic.normalize import canonical
from sluice.cache.semantic.swap import word_swap
from sluice.cache.semantic.training.pairs import is_calibration, read_seeds, seed_file

DATA = Path(__file__).parents[1] / "data"


@pytest.mark.parametrize(
    "variant",
    [
        "How do I reset my password?",
        "how do i reset my password",
        "  HOW do I   reset my password??? ",
        "Hi, how do I reset my password? Thanks!",
        "Hey there, quick question: how do I reset my password, please?",
        "Hello! How do I reset my password?! thank you in advance.",
        "how do i reset my password\u2026",
    ],
)
def test_trivial_variants_share_one_canonical_form(variant: str) -> None:
    assert canonical(variant) == canonical("How do I reset my password?")


def test_contractions_and_unicode_forms_are_spelt_out() -> None:
    assert canonical("What\u2019s the price?") == canonical("what is the price")
    assert canonical("I can't log in") == canonical("I cannot log in") == "i can not log in"
    assert canonical("\uff37hat is \uff30ython?") == "what is python"  # full-width forms (NFKC)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Can I return a blender within 14 days?", "Can I return a blender after 14 days?"),
        ("Can I return a blender within 14 days?", "Can I return a blender within 30 days?"),
        ("Can I pay with a card?", "Can I pay without a card?"),
        ("Was I charged?", "Was I not charged?"),
        ("How do I fly to Paris?", "How do I fly from Paris?"),
        ("Is 1,000 enough?", "Is 1000 enough?"),  # the number's form stays as written
        ("Which drinks should I avoid?", "Which drinks should I have?"),
        ("What is 3.11?", "What is 3.12?"),
    ],
)
def test_words_that_carry_meaning_are_kept(a: str, b: str) -> None:
    assert canonical(a) != canonical(b)


def test_no_lookalike_in_any_pair_set_shares_a_canonical_form() -> None:
    """Zero false hits by construction, checked on every labelled negative we have."""
    files = [DATA / "semantic_pairs.jsonl", *(DATA / "semcache").glob("*.jsonl")]
    negatives = 0
    for path in files:
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["label"] == 0:
                negatives += 1
                assert canonical(row["a"]) != canonical(row["b"]), row
    assert negatives > 10_000


def test_word_swap_refuses_role_and_clause_swaps_but_not_moved_phrases() -> None:
    refused = [
        ("Can an admin delete a member's project?", "Can a member delete an admin's project?"),
        (
            "I received the invoice but was not charged",
            "I was charged but did not receive the invoice",
        ),
        ("Convert USD to EUR", "Convert EUR to USD"),
    ]
    for a, b in refused:
        assert word_swap(a, b) is not None and contrast(a, b) is not None
    kept = [
        ("In Python, how do I reverse a list?", "How do I reverse a list in Python?"),
        ("Difference between a list and a tuple?", "Difference between a tuple and a list?"),
        ("How do I reset my password?", "how do i reset my password"),
    ]
    for a, b in kept:
        assert word_swap(a, b) is None


def test_conformal_threshold_arithmetic() -> None:
    scores = tuple(i / 100 for i in range(100))  # 0.00 .. 0.99
    # (k + 1) / 101 <= 5% -> k = 4 may pass: the threshold sits just above 0.95
    t = threshold_from_scores(scores, 0.05)
    assert 0.95 < t < 0.9501 and sum(s >= t for s in scores) == 4
    assert threshold_from_scores(scores, 0.005) == NEVER  # too few look-alikes to promise it
    assert threshold_from_scores((), 0.5) == NEVER


def test_splits_share_no_seed_question_and_reach_twenty_thousand_pairs() -> None:
    train = read_seeds(seed_file("train.txt"))
    held = read_seeds(seed_file("heldout.txt"))
    train_q = {p for c in train for p in c.phrasings + c.lookalikes}
    held_q = {p for c in held for p in c.phrasings + c.lookalikes}
    assert not train_q & held_q
    assert not {c.topic for c in held} & {c.topic for c in train}
    assert any(is_calibration(c) for c in train) and not all(is_calibration(c) for c in train)
    counts = {}
    for name in ("train", "calibration", "heldout"):
        rows = [
            json.loads(x) for x in (DATA / "semcache" / f"{name}.jsonl").read_text().splitlines()
        ]
        counts[name] = len(rows)
        kinds = {r["kind"] for r in rows}
        assert {"identical", "trivial", "reword", "negation", "number", "entity"} <= kinds
        assert all(r["a"] == r["b"] for r in rows if r["kind"] == "identical" and not r["label"])
        assert 0.3 < sum(r["label"] for r in rows) / len(rows) < 0.6
    assert sum(counts.values()) >= 20_000


def test_train2_is_train_only_and_shares_no_question_or_topic_with_the_tested_splits() -> None:
    """Card 1.2.0's extra seeds (author C) feed training only: no seed question, no
    generated pair text and no topic in common with the calibration or held-out split."""
    extra = read_seeds(seed_file("train2.txt"))
    held = read_seeds(seed_file("heldout.txt"))
    calibration = [c for c in read_seeds(seed_file("train.txt")) if is_calibration(c)]
    extra_q = {p.lower() for c in extra for p in c.phrasings + c.lookalikes}
    for other in (held, calibration):
        assert not extra_q & {p.lower() for c in other for p in c.phrasings + c.lookalikes}
    assert not {c.topic for c in held} & {c.topic for c in extra}

    def texts(name: str) -> set[str]:
        lines = (DATA / "semcache" / f"{name}.jsonl").read_text().splitlines()
        return {t.strip().lower() for x in lines for t in (json.loads(x)["a"], json.loads(x)["b"])}

    generated = texts("train2")
    assert len(generated) > 5_000
    assert not generated & texts("calibration")
    assert not generated & texts("heldout")
