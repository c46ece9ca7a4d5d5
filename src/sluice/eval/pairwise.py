"""Pairwise judging: which of two targets answered an item better, position-swapped.

LLM judges favour one position (often the first answer). Each item is judged twice, with
the baseline's answer as A and then as B; a target wins only when both orders pick it, and
any disagreement between the orders counts as a tie (and as `inconsistent`, a measure of the
judge's position bias). Verdicts go through the gateway with a strict `json_schema`
(`{"winner": "A" | "B" | "tie", "reason": ...}`) like the 1-5 judge, recorded as helper calls
of the baseline's call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from jsonschema import Draft202012Validator

from sluice.eval.dataset import EvalItem
from sluice.eval.judge import MAX_REASON_CHARS, JudgeError
from sluice.eval.runner import ItemResult

if TYPE_CHECKING:
    import openai

Winner = Literal["A", "B", "tie"]
Outcome = Literal["baseline", "candidate", "tie"]
PAIRWISE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "winner": {"type": "string", "enum": ["A", "B", "tie"]},
        "reason": {"type": "string", "maxLength": MAX_REASON_CHARS},
    },
    "required": ["winner", "reason"],
    "additionalProperties": False,
}
_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "pairwise_verdict", "strict": True, "schema": PAIRWISE_SCHEMA},
}
_VALIDATOR = Draft202012Validator(PAIRWISE_SCHEMA)
SYSTEM = (
    "You compare two answers to the same QUESTION against the RUBRIC. Reply with JSON only: "
    '{"winner": "A" | "B" | "tie", "reason": "<one short sentence>"}.'
)


def pairwise_messages(rubric: str, question: str, a: str, b: str) -> list[dict[str, str]]:
    user = f"RUBRIC:\n{rubric}\n\nQUESTION:\n{question}\n\nANSWER A:\n{a}\n\nANSWER B:\n{b}"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def parse_winner(text: str) -> Winner:
    try:
        doc = orjson.loads(text.strip())
    except orjson.JSONDecodeError:
        raise JudgeError(f"pairwise reply is not JSON: {text[:80]!r}") from None
    error = next(iter(_VALIDATOR.iter_errors(doc)), None)
    if error is not None:
        raise JudgeError(f"pairwise verdict is invalid: {error.message[:200]}")
    winner: Winner = doc["winner"]
    return winner


def combine(first: Winner, swapped: Winner) -> tuple[Outcome, bool]:
    """The outcome from the verdict with the baseline as A and the one with it as B, and
    whether the two orders disagreed."""
    as_first: Outcome = {"A": "baseline", "B": "candidate", "tie": "tie"}[first]  # type: ignore[assignment]
    as_second: Outcome = {"A": "candidate", "B": "baseline", "tie": "tie"}[swapped]  # type: ignore[assignment]
    if as_first == as_second:
        return as_first, False
    return "tie", True


@dataclass(frozen=True, slots=True)
class PairwiseReport:
    baseline: str
    candidate: str
    baseline_wins: int
    candidate_wins: int
    ties: int
    inconsistent: int  # the two orders disagreed (counted as ties)
    errors: int  # items not compared: a call or a judge call failed
    items: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        compared = self.baseline_wins + self.candidate_wins + self.ties
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "baseline_wins": self.baseline_wins,
            "candidate_wins": self.candidate_wins,
            "ties": self.ties,
            "inconsistent": self.inconsistent,
            "errors": self.errors,
            "candidate_win_rate": self.candidate_wins / compared if compared else None,
            "items": self.items,
        }

    def line(self) -> str:
        return (
            f"pairwise ({self.candidate} vs {self.baseline}, both orders): "
            f"{self.candidate_wins} won, {self.baseline_wins} lost, {self.ties} tied "
            f"({self.inconsistent} by order disagreement), {self.errors} not compared"
        )


async def compare(
    client: openai.AsyncOpenAI,
    model: str,
    rubric: str,
    items: Sequence[EvalItem],
    results: Sequence[ItemResult],
    baseline: str,
    candidate: str,
    concurrency: int = 4,
) -> PairwiseReport:
    by_key = {(r.target, r.item_id): r for r in results}
    gate = asyncio.Semaphore(concurrency)

    async def one(item: EvalItem) -> dict[str, Any]:
        a, b = by_key.get((baseline, item.id)), by_key.get((candidate, item.id))
        if a is None or b is None or a.output is None or b.output is None:
            return {"item_id": item.id, "error": "a target has no answer"}
        headers = {
            "x-sluice-feature": "sluice-eval-judge",
            "x-sluice-parent-request-id": a.request_id,
        }
        question = item.question_text()
        try:
            async with gate:
                first = await pairwise_verdict(
                    client, model, rubric, question, a.output, b.output, headers
                )
                swapped = await pairwise_verdict(
                    client, model, rubric, question, b.output, a.output, headers
                )
        except JudgeError as exc:
            return {"item_id": item.id, "error": str(exc)}
        outcome, inconsistent = combine(first, swapped)
        return {
            "item_id": item.id,
            "outcome": outcome,
            "inconsistent": inconsistent,
            "verdicts": [first, swapped],
        }

    rows = list(await asyncio.gather(*(one(item) for item in items)))
    outcomes = [r.get("outcome") for r in rows]
    return PairwiseReport(
        baseline=baseline,
        candidate=candidate,
        baseline_wins=outcomes.count("baseline"),
        candidate_wins=outcomes.count("candidate"),
        ties=outcomes.count("tie"),
        inconsistent=sum(bool(r.get("inconsistent")) for r in rows),
        errors=sum("error" in r for r in rows),
        items=rows,
    )


async def pairwise_verdict(
    client: openai.AsyncOpenAI,
    model: str,
    rubric: str,
    question: str,
    a: str,
    b: str,
    headers: dict[str, str],
) -> Winner:
    import openai

    try:
        completion = await client.chat.completions.create(  # type: ignore[call-overload]
            model=model,
            messages=pairwise_messages(rubric, question, a, b),
            response_format=_FORMAT,
            temperature=0,
            extra_headers=headers,
        )
    except openai.APIError as exc:
        raise JudgeError(f"pairwise judge call failed: {type(exc).__name__}: {exc}"[:300]) from None
    text = completion.choices[0].message.content if completion.choices else None
    return parse_winner(text or "")
