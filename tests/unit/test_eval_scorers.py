"""The deterministic scorers, the bootstrap CI, gates and dataset parsing, table-tested."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sluice.eval.dataset import DatasetError, load_dataset
from sluice.eval.results import gate, regressions, summarize
from sluice.eval.runner import ItemResult
from sluice.eval.scorers import ScorerError, ScorerSpec, normalize, score, score_item
from sluice.eval.stats import bootstrap_ci

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.mark.parametrize(
    ("answer", "expected", "spec", "want"),
    [
        ("Paris", "Paris", {"type": "exact"}, 1.0),
        ("Paris.", "Paris", {"type": "exact"}, 0.0),
        ("  paris.\n", "Paris", {"type": "normalized"}, 1.0),
        ("Lyon", "Paris", {"type": "normalized"}, 0.0),
        ("It is Paris, France", "Paris", {"type": "contains"}, 1.0),
        ("it is paris", "Paris", {"type": "contains"}, 0.0),
        ("it is paris", None, {"type": "contains", "value": "PARIS", "ignore_case": True}, 1.0),
        ("order 12345", None, {"type": "regex", "pattern": r"\d{5}"}, 1.0),
        ("order 1234", None, {"type": "regex", "pattern": r"\d{5}"}, 0.0),
        ('{"n": 1}', None, {"type": "json_valid"}, 1.0),
        ('```json\n{"n": 1}\n```', None, {"type": "json_valid"}, 1.0),
        ('{"n": ', None, {"type": "json_valid"}, 0.0),
        ('{"n": 1}', None, {"type": "json_schema", "schema": SCHEMA}, 1.0),
        ('{"n": "1"}', None, {"type": "json_schema", "schema": SCHEMA}, 0.0),
        ("about 3.14159", "3.14", {"type": "numeric", "tolerance": 0.01}, 1.0),
        ("about 3.2", "3.14", {"type": "numeric", "tolerance": 0.01}, 0.0),
        ("1,050 units", "1000", {"type": "numeric", "relative": 0.05}, 1.0),
        ("no number", "4", {"type": "numeric"}, 0.0),
        ("4", None, {"type": "exact"}, 0.0),  # needs an expected value
    ],
)
def test_scorers(answer: str, expected: str | None, spec: dict[str, Any], want: float) -> None:
    assert score(answer, expected, ScorerSpec.model_validate(spec)) == want


def test_item_scores_name_repeated_types_and_default_to_normalized() -> None:
    specs = (ScorerSpec(type="contains", value="a"), ScorerSpec(type="contains", value="z"))
    assert score_item("abc", None, specs) == {"contains": 1.0, "contains#2": 0.0}
    assert score_item("ABC ", "abc", ()) == {"normalized": 1.0}
    assert normalize("  Hello   World! ") == "hello world"


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "regex"},
        {"type": "regex", "pattern": "("},
        {"type": "json_schema"},
        {"type": "json_schema", "schema": {"type": 7}},
        {"type": "numeric", "tolerance": -1},
        {"type": "nope"},
    ],
)
def test_bad_scorer_specs_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ScorerSpec.model_validate(spec)


def test_bootstrap_ci_is_seeded_and_brackets_the_mean() -> None:
    values = [1.0] * 30 + [0.0] * 10
    low, high = bootstrap_ci(values) or (0, 0)
    assert low < 0.75 < high and low > 0.55 and high < 0.9
    assert bootstrap_ci(values) == (low, high)
    assert bootstrap_ci([]) is None and bootstrap_ci([0.5]) == (0.5, 0.5)


def _r(target: str, item: str, s: float, cost: str | None = None) -> ItemResult:
    from decimal import Decimal

    return ItemResult(
        item, target, "x", {"x": s}, s, s >= 1.0, f"r-{target}-{item}", 10.0,
        cost_usd=None if cost is None else Decimal(cost), cost_source="header" if cost else "none",
    )  # fmt: skip


def test_summaries_regressions_and_gates() -> None:
    results = [
        _r("a", "1", 1.0, "0.002"),
        _r("a", "2", 1.0, "0.004"),
        _r("b", "1", 1.0),
        _r("b", "2", 0.0),
    ]
    a, b = summarize(results, ["a", "b"])
    assert a.mean_score == 1.0 and str(a.cost_per_item_usd) == "0.003" and a.cost_known == 2
    assert b.mean_score == 0.5 and b.pass_rate == 0.5 and b.cost_per_item_usd is None
    assert b.cost_sources == {"none": 2}
    (worse,) = regressions(results, "a", "b")
    assert (worse.item_id, worse.baseline, worse.candidate) == ("2", 1.0, 0.0)
    assert gate([a, b], fail_under=None, max_regression=0.5) == []
    assert len(gate([a, b], fail_under=None, max_regression=0.4)) == 1
    assert len(gate([a, b], fail_under=0.6, max_regression=None)) == 1


def test_dataset_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    cases = {
        '{"input": "x", "expected": "y"}\n[1]\n': "d.jsonl:2: each line must be a JSON object",
        '{"input": "x"}\n': "d.jsonl:1: ",
        '{"input": "x", "messages": [], "expected": 1}\n': "exactly one of",
        '{"id": "a", "input": "x", "expected": 1}\n{"id": "a", "input": "y", "expected": 1}\n': (
            "duplicate id"
        ),
        "{oops\n": "not valid JSON",
        "\n": "no items",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(DatasetError, match=message.replace("[", r"\[")):
            load_dataset(path)
    path.write_text('{"input": "2+2?", "system": "be terse", "expected": 4}\n')
    (item,) = load_dataset(path)
    assert item.id == "1" and item.expected_text() == "4"
    assert item.chat_messages()[0] == {"role": "system", "content": "be terse"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"score": 4, "reason": "good"}', None),
        ('  {"score": 1, "reason": ""}\n', None),
        ('{"score": 0, "reason": "x"}', "at score"),
        ('{"score": 6, "reason": "x"}', "at score"),
        ('{"score": 3.5, "reason": "x"}', "at score"),
        ('{"score": 3}', "verdict"),
        ('{"score": 3, "reason": "x", "extra": 1}', "verdict"),
        ('{"score": 3, "reason": "' + "x" * 501 + '"}', "at reason"),
        ("Score: 4", "not JSON"),
        ("[4]", "verdict"),
    ],
)
def test_judge_verdicts_are_validated(text: str, error: str | None) -> None:
    from sluice.eval.judge import JudgeError, parse_verdict

    if error is None:
        verdict = parse_verdict(text)
        assert 1 <= verdict.score <= 5 and verdict.normalized == (verdict.score - 1) / 4
        return
    with pytest.raises(JudgeError, match=error):
        parse_verdict(text)


def test_judge_prompt_and_spec() -> None:
    from sluice.eval.judge import judge_messages

    system, user = judge_messages("is it polite?", "hi", "hello there", "hello")
    assert "1" in system["content"] and "5" in system["content"]
    assert user["content"].index("RUBRIC") < user["content"].index("REFERENCE ANSWER")
    assert "REFERENCE" not in judge_messages("r", "q", "a", None)[1]["content"]
    with pytest.raises(ValidationError, match="rubric"):
        ScorerSpec.model_validate({"type": "judge"})
    spec = ScorerSpec.model_validate({"type": "judge", "rubric": "r", "pass_at": 3})
    assert score_item("x", None, (spec,)) == {}  # judges are the runner's


def test_python_scorer_specs() -> None:
    with pytest.raises(ValidationError, match="callable"):
        ScorerSpec.model_validate({"type": "python"})
    with pytest.raises(ValidationError, match="cannot import"):
        ScorerSpec.model_validate({"type": "python", "callable": "no_such_mod_x:f"})
    with pytest.raises(ValidationError, match="not a callable"):
        ScorerSpec.model_validate({"type": "python", "callable": "math:pi"})
    with pytest.raises(ValidationError):
        ScorerSpec.model_validate({"type": "python", "callable": "os.system"})  # no function
    spec = ScorerSpec.model_validate({"type": "python", "callable": "math:isfinite"})
    with pytest.raises(ScorerError, match="TypeError"):
        score("1", None, spec)  # isfinite("1") raises
    spec = ScorerSpec.model_validate({"type": "python", "callable": "builtins:max"})
    with pytest.raises(ScorerError, match="not a score"):
        score("9", "8", spec)  # max("9", "8") == "9"
    spec = ScorerSpec.model_validate({"type": "python", "callable": "operator:eq"})
    assert score("a", "a", spec) == 1.0 and score("a", "b", spec) == 0.0


@pytest.mark.parametrize(
    ("first", "swapped", "outcome", "inconsistent"),
    [
        ("A", "B", "baseline", False),
        ("B", "A", "candidate", False),
        ("tie", "tie", "tie", False),
        ("A", "A", "tie", True),  # position bias: the first answer always wins
        ("B", "B", "tie", True),
        ("A", "tie", "tie", True),
    ],
)
def test_pairwise_outcome_needs_both_orders(
    first: str, swapped: str, outcome: str, inconsistent: bool
) -> None:
    from sluice.eval.pairwise import combine

    assert combine(first, swapped) == (outcome, inconsistent)  # type: ignore[arg-type]


def test_pairwise_verdicts_are_validated() -> None:
    from sluice.eval.judge import JudgeError
    from sluice.eval.pairwise import parse_winner

    assert parse_winner('{"winner": "B", "reason": "clearer"}') == "B"
    for bad in ('{"winner": "C", "reason": ""}', '{"winner": "A"}', "A"):
        with pytest.raises(JudgeError):
            parse_winner(bad)


def test_similarity_scorer_uses_the_local_minilm() -> None:
    pytest.importorskip("onnxruntime")
    spec = ScorerSpec.model_validate({"type": "similarity", "threshold": 0.8})
    near = score("Paris is the capital of France.", "The capital of France is Paris.", spec)
    far = score("I like turtles.", "The capital of France is Paris.", spec)
    assert near > 0.8 > 0.3 > far >= 0.0
    assert score("anything", None, spec) == 0.0
    scores = score_item("Paris is the capital of France.", "France's capital is Paris", (spec,))
    assert scores["similarity"] >= spec.threshold  # the runner's pass test


async def test_pacer_spaces_call_starts() -> None:
    import asyncio
    import time

    from sluice.eval.runner import Pacer

    pace = Pacer(600)  # one start per 0.1 s
    started = time.monotonic()
    await asyncio.gather(*(pace.wait() for _ in range(5)))
    assert time.monotonic() - started >= 0.39  # the 5th start waits 4 intervals
    unpaced = Pacer(None)
    started = time.monotonic()
    await asyncio.gather(*(unpaced.wait() for _ in range(100)))
    assert time.monotonic() - started < 5  # generous: no sleeping at all


def test_export_errors_are_messages(tmp_path: Path) -> None:
    import sqlite3

    from sluice.eval.export import export_rows
    from sluice.observe.report import ReportError

    with pytest.raises(ReportError, match="does not exist"):
        export_rows(f"sqlite:///{tmp_path / 'missing.db'}", 0)
    assert not (tmp_path / "missing.db").exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(ReportError, match="no sluice_feedback table"):
        export_rows(f"sqlite:///{empty}", 0)
    with pytest.raises(ReportError, match="not a database URL"):
        export_rows("nonsense", 0)
