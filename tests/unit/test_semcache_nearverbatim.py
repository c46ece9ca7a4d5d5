"""The near-verbatim accept path: typos and moved adverbials are served without the model, and
no negative pair we have (train, calibration, held-out, public) is ever accepted by it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.cache.semantic.decision import decide_many
from sluice.cache.semantic.guard import contrast
from sluice.cache.semantic.nearverbatim import near_verbatim, one_edit

DATA = Path(__file__).parents[1] / "data"


@pytest.mark.parametrize(
    ("a", "b", "shape"),
    [
        ("When will my claim be processed?", "when will my caim be processed", "typo"),
        ("Can I open a joint account?", "can i open a joint acount", "typo"),
        ("Can I add my partner to it?", "can i add my parttner to it?", "typo"),
        ("How do I reset my password?", "How do I reset my passwrod?", "typo"),
        # "delete" is no whole word of the WordPiece list (del + ##ete), but a protected one
        ("How can I delete my account?", "how can i deltee my account", "typo"),
        ("Can I work from home on Fridays?", "On Fridays, can I work from home?", "moved phrase"),
        ("Can I pay a cheque in the app?", "in the app can i pay a cheque", "moved phrase"),
    ],
)  # fmt: skip
def test_typos_and_moved_adverbials_are_near_verbatim(a: str, b: str, shape: str) -> None:
    assert near_verbatim(a, b) == shape


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("I pay for 500 Mbps, why is it slow?", "I pay for 500 Gbps, why is it slow?"),  # unit
        ("How do I reset my password?", "How do I rest my password?"),  # a real word
        ("How many times a week should I lift?", "How many ties a week should I lift?"),
        ("Do you deliver after 11 pm?", "Do you deliver ater 11 pm?"),  # after or later?
        ("Is there a fee?", "Is three a fee?"),  # a real word, a number word
        ("Can I pay in a shop?", "Can I pay on a shop?"),  # too short to be a typo
        ("Alice pays Bob", "Bob pays Alice"),  # role swap, not a rotation at an adverbial
        ("Can I return it before the deadline?", "Can I return it after the deadline?"),
        ("Is the cat allowed?", "Is the cat not allowed?"),
        ("How do I reset my password?", "How do I reset my password?"),  # normalized tier's
        ("我想 退货 可以吗", "我想 退款 可以吗"),  # one character: return goods / refund
        ("Puedo cambiar el vuelo mañana", "Pudo cambiar el vuelo mañana"),  # can / could
        ("Kann ich das Paket morgen abholen", "Kann ich das Paket morgen abhohlen"),  # not English
    ],
)
def test_look_alikes_are_not_near_verbatim(a: str, b: str) -> None:
    assert near_verbatim(a, b) is None


def test_long_questions_are_left_to_the_verifier() -> None:
    words = ["on"] * 2000  # a rotation check over 2,000 words would block the event loop
    assert near_verbatim(" ".join(words), " ".join([*words[1:], "in"])) is None


def test_one_edit() -> None:
    assert one_edit("claim", "caim") and one_edit("caim", "claim")
    assert one_edit("annual", "anunal")  # neighbours swapped
    assert one_edit("steak", "steek")
    assert not one_edit("steak", "steak") and not one_edit("steak", "stake")


def _pairs() -> list[dict[str, object]]:
    files = [*sorted((DATA / "semcache").glob("*.jsonl")), DATA / "semantic_pairs.jsonl"]
    return [json.loads(line) for f in files for line in f.read_text().splitlines() if line]


def test_no_negative_pair_is_near_verbatim() -> None:
    negatives = [p for p in _pairs() if not p["label"]]
    assert len(negatives) > 14_000
    accepted = [p for p in negatives if near_verbatim(str(p["b"]), str(p["a"]))]
    assert accepted == []


def test_near_verbatim_is_served_without_the_verifier_and_the_guard_still_vetoes() -> None:
    asked: list[tuple[str, str]] = []

    def scorer(pairs: list[tuple[str, str]]) -> list[float]:
        asked.extend(pairs)
        return [0.0] * len(pairs)

    served, vetoed, typo = decide_many(
        [
            ("When will my caim be processed?", "When will my claim be processed?", 0.9),
            ("Can I fly to Paris on Monday?", "On Tuesday can I fly to Paris?", 0.9),
            ("What is my pyhon version?", "What is my Python version?", 0.9),  # no "entity"
        ],
        scorer,
        0.9,
        0.5,
        contrast,
    )
    assert served.serve and served.tier == "semantic" and served.score is None
    assert "near-verbatim" in served.reason
    assert not vetoed.serve and vetoed.reason.startswith("guard")
    assert typo.serve and typo.reason == "near-verbatim (typo)"
    assert asked == []
