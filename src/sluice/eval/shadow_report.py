"""`sluice eval shadow report`: the stored shadow pairs judged pairwise.

Each pair (the production answer and the candidate's answer to the same live call, kept by
`sluice.eval.live`) is judged twice through the gateway with the pairwise judge
(`sluice.eval.pairwise`: both positions, disagreement counts as a tie), as helper calls of
the production call (`x-sluice-parent-request-id`). Pairs whose candidate call failed are
counted, not judged. The result per route and candidate: wins, losses, ties, the
candidate's win rate, its error rate and the mean latencies of both sides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import TYPE_CHECKING, Any

from sluice.eval.judge import JudgeError
from sluice.eval.live_store import ShadowPair
from sluice.eval.pairwise import Outcome, combine, pairwise_verdict

if TYPE_CHECKING:
    import openai

FEATURE = "sluice-shadow-judge"


@dataclass(slots=True)
class ShadowGroup:
    route: str
    candidate: str
    pairs: int = 0
    candidate_errors: int = 0
    candidate_wins: int = 0
    production_wins: int = 0
    ties: int = 0
    inconsistent: int = 0
    judge_errors: int = 0
    production_ms: list[float] = field(default_factory=list)
    candidate_ms: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        judged = self.candidate_wins + self.production_wins + self.ties
        return {
            "route": self.route,
            "candidate": self.candidate,
            "pairs": self.pairs,
            "candidate_errors": self.candidate_errors,
            "candidate_error_rate": self.candidate_errors / self.pairs if self.pairs else None,
            "judged": judged,
            "candidate_wins": self.candidate_wins,
            "production_wins": self.production_wins,
            "ties": self.ties,
            "inconsistent": self.inconsistent,
            "judge_errors": self.judge_errors,
            "candidate_win_rate": self.candidate_wins / judged if judged else None,
            "production_ms_mean": fmean(self.production_ms) if self.production_ms else None,
            "candidate_ms_mean": fmean(self.candidate_ms) if self.candidate_ms else None,
        }

    def line(self) -> str:
        doc = self.to_json()
        rate = doc["candidate_win_rate"]
        return (
            f"{self.route} -> {self.candidate}: {self.pairs} pairs, {self.candidate_errors} "
            f"candidate errors; candidate won {self.candidate_wins}, lost "
            f"{self.production_wins}, tied {self.ties} ({self.inconsistent} by order "
            f"disagreement), {self.judge_errors} not judged; win rate "
            f"{'-' if rate is None else f'{rate:.1%}'}"
        )


async def judge_pairs(
    client: openai.AsyncOpenAI,
    model: str,
    rubric: str,
    pairs: Sequence[ShadowPair],
    concurrency: int = 4,
) -> list[ShadowGroup]:
    groups: dict[tuple[str, str], ShadowGroup] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(pair: ShadowPair) -> tuple[ShadowPair, Outcome | None, bool, bool]:
        if pair.error is not None or pair.candidate_output is None:
            return pair, None, False, False
        headers = {"x-sluice-feature": FEATURE, "x-sluice-parent-request-id": pair.request_id}
        try:
            async with gate:
                first = await pairwise_verdict(
                    client, model, rubric, pair.question, pair.production,
                    pair.candidate_output, headers,
                )  # fmt: skip
                swapped = await pairwise_verdict(
                    client, model, rubric, pair.question, pair.candidate_output,
                    pair.production, headers,
                )  # fmt: skip
        except JudgeError:
            return pair, None, False, True
        outcome, inconsistent = combine(first, swapped)
        return pair, outcome, inconsistent, False

    for pair, outcome, inconsistent, failed in await asyncio.gather(*(one(p) for p in pairs)):
        g = groups.get((pair.route, pair.candidate))
        if g is None:
            g = groups[(pair.route, pair.candidate)] = ShadowGroup(pair.route, pair.candidate)
        g.pairs += 1
        g.production_ms.append(pair.production_ms)
        if pair.error is not None:
            g.candidate_errors += 1
            continue
        g.candidate_ms.append(pair.candidate_ms)
        if failed:
            g.judge_errors += 1
        elif outcome == "candidate":
            g.candidate_wins += 1
        elif outcome == "baseline":
            g.production_wins += 1
        elif outcome == "tie":
            g.ties += 1
        g.inconsistent += inconsistent
    return sorted(groups.values(), key=lambda g: (g.route, g.candidate))
