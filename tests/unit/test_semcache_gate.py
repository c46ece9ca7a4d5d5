"""The gate analysis (`training/gate.py`) checks each contrast-guard rule on its own; its rule
split must agree with `guard.contrast` (which stops at the first rule), or the per-rule
costs it reports are of another guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.cache.semantic.guard import contrast
from sluice.cache.semantic.normalize import without_filler
from sluice.cache.semantic.training.gate import RULES, Pair, decision, rules_firing

DATA = Path(__file__).resolve().parents[1] / "data" / "semcache" / "calibration.jsonl"


def test_some_rule_fires_exactly_when_the_guard_refuses() -> None:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()[:1500]]
    fired: set[str] = set()
    for row in rows:
        a, b = without_filler(row["b"]), without_filler(row["a"])
        rules = rules_firing(a, b)
        assert bool(rules) == (contrast(a, b) is not None), (a, b, rules)
        fired |= rules
    assert len(fired) >= 6, fired  # the sample exercises most rules


@pytest.mark.parametrize(
    ("a", "b", "rule"),
    [
        ("How do I upload a file?", "How do I download a file?", "opposite"),
        ("Is Python 3.11 faster?", "Is Python 3.12 faster?", "number"),
        ("Can I pay with a card?", "Can I pay without a card?", "negation"),
        ("Convert USD to EUR", "Convert EUR to USD", "swapped"),
    ],
)
def test_rules_are_named(a: str, b: str, rule: str) -> None:
    assert rule in RULES
    assert rule in rules_firing(a, b)


def test_decision_applies_floor_and_vetoes() -> None:
    p = Pair(1, "reworded", 0.42, False, frozenset({"entity"}), 0.9912345)
    assert decision(p, 0.5, frozenset()) == 0.0  # under the floor
    assert decision(p, 0.4, frozenset(RULES)) == 0.0  # vetoed
    assert decision(p, 0.4, frozenset(RULES) - {"entity"}) == 0.99123
    early = Pair(1, "trivial", 0.1, True, frozenset(), None)
    assert decision(early, 0.5, frozenset(RULES)) == 1.0
