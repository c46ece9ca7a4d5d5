"""`strategy: learned`: P(strong model needed | prompt) from a small trained model.

In the spirit of RouteLLM: a logistic regression over the MiniLM embedding of the last user
turn (nudged 30% towards the turn before, when there is one) and 14 cheap signals (length,
code, errors, maths symbols, questions, JSON/tool requests, depth) — see `weights.py` and
`signals.py`. The weights ship in the package (`model/learned_router.npz`, trained by
`sluice route train` on tests/data/routing_learned, model card beside it); a route may
point at its own. The decision costs one embedding (~4 ms, off the event loop) plus a dot
product (a few µs).

The knob is `max_strong_to_cheap`: the threshold is read off the calibration curve stored
with the weights. A prompt goes to `cheap` when P < threshold, else to `strong`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sluice.routing.config import CascadeConfig, LearnedConfig
from sluice.routing.features import RouteInput
from sluice.routing.signals import Turns, signal_vector
from sluice.routing.weights import Contribution, LearnedWeights, logit_of

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from sluice.embed import Embedder

log = logging.getLogger("sluice.routing")


@dataclass(frozen=True, slots=True)
class LearnedVerdict:
    target: str
    probability: float
    threshold: float
    margin: float  # logit(P) - logit(threshold): > 0 strong, < 0 cheap
    confident: bool
    self_check: bool  # a cheap pick close enough to the threshold to self-check

    @property
    def reason(self) -> str:
        sign = ">=" if self.margin >= 0 else "<"
        note = "" if self.confident else ", unsure"
        return f"P(strong)={self.probability:.3f} {sign} threshold {self.threshold:.3f}{note}"


class LearnedRouter:
    def __init__(self, config: LearnedConfig, embedder: Embedder) -> None:
        self.config = config
        self.weights = LearnedWeights.load(config.weights)
        self._embedder = embedder
        self.threshold = (
            config.threshold
            if config.threshold is not None
            else self.weights.threshold_for(config.max_strong_to_cheap)
        )
        self.self_check_cascade = CascadeConfig(
            cheap=config.cheap,
            strong=config.strong,
            marker="UNCERTAIN",
            instruction=config.self_check_instruction,
        )

    # --- deciding ----------------------------------------------------------------------

    async def decide(self, inp: RouteInput) -> LearnedVerdict:
        turns = turns_of(inp)
        vectors = await self._embedder.embed(_texts(turns))
        return self.verdict(self._mix(vectors), turns)

    def decide_sync(self, inp: RouteInput) -> LearnedVerdict:
        turns = turns_of(inp)
        return self.verdict(self._mix(self._embedder.embed_sync(_texts(turns))), turns)

    def verdict(self, embedding: npt.NDArray[np.float32], turns: Turns) -> LearnedVerdict:
        p = self.weights.probability(embedding, signal_vector(turns))
        margin = logit_of(p) - logit_of(self.threshold)
        band = self.config.self_check_band
        return LearnedVerdict(
            target=self.config.strong if margin >= 0 else self.config.cheap,
            probability=p,
            threshold=self.threshold,
            margin=margin,
            confident=abs(margin) >= self.config.confident_logit,
            self_check=band is not None and -band <= margin < 0,
        )

    def explain(self, inp: RouteInput) -> tuple[LearnedVerdict, list[Contribution]]:
        """The verdict and the logit's terms, largest effect first (blocking)."""
        turns = turns_of(inp)
        embedding = self._mix(self._embedder.embed_sync(_texts(turns)))
        terms = self.weights.contributions(embedding, signal_vector(turns))
        terms.sort(key=lambda c: abs(c.value), reverse=True)
        return self.verdict(embedding, turns), terms

    def _mix(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The last turn's vector, nudged towards the previous turn's when there is one."""
        import numpy as np

        if len(vectors) == 1:
            return np.asarray(vectors[0], dtype=np.float32)
        mixed = vectors[0] + self.weights.context_weight * vectors[1]
        norm = float((mixed @ mixed) ** 0.5)
        return np.asarray(mixed / max(norm, 1e-12), dtype=np.float32)


def turns_of(inp: RouteInput) -> Turns:
    return Turns(last=inp.text, previous=inp.previous, depth=inp.depth, tools=inp.tools)


def _texts(turns: Turns) -> list[str]:
    return [turns.last, turns.previous] if turns.previous else [turns.last]
