"""The typo augmentation for verifier training: generic edits, train seeds only, never a
change of a word that carries a checked meaning."""

from __future__ import annotations

import random

from sluice.cache.semantic.nearverbatim import one_edit, vocabulary
from sluice.cache.semantic.training.augment import (
    build,
    keyboard_typo,
    protected,
    real_word_typo,
)
from sluice.cache.semantic.training.pairs import is_calibration, read_seeds, seed_file


def _changed(a: str, b: str) -> list[tuple[str, str]]:
    words = zip(a.split(), b.split(), strict=True)
    return [(x.strip("?,."), y.strip("?,.")) for x, y in words if x != y]


def test_a_real_word_typo_is_another_dictionary_word_one_edit_away() -> None:
    rng = random.Random(1)
    text = "How long does delivery usually take to my country?"
    for _ in range(30):
        out = real_word_typo(text, rng)
        assert out is not None
        [(x, y)] = _changed(text, out)
        assert one_edit(x, y) and y in vocabulary() and x[0] == y[0]


def test_typos_never_touch_negations_numbers_dates_or_opposites() -> None:
    rng = random.Random(2)
    text = "Can I not upload after Monday within seven days?"  # only "days" is plain
    for _ in range(50):
        for edit in (real_word_typo, keyboard_typo):
            out = edit(text, rng)
            if out is not None:
                assert all(x not in protected() for x, _ in _changed(text, out))
    assert {"not", "upload", "download", "after", "within", "monday", "seven"} <= protected()


def test_pairs_come_from_the_train_seeds_only() -> None:
    seeds = read_seeds(seed_file("train.txt"))
    calibration = {c.key for c in seeds if is_calibration(c)}
    pairs = build(seed=3, per_phrasing=1, limit=6)
    assert pairs and not {p.cluster for p in pairs} & calibration
    assert {p.label for p in pairs} == {0, 1}
    held_out = {c.key for c in read_seeds(seed_file("heldout.txt"))}
    assert not {p.cluster for p in pairs} & held_out
    dev = build(seed=3, per_phrasing=1, calibration=True, limit=3)
    assert {p.cluster for p in dev} <= calibration
