"""Indirect prompt injection in retrieved chunks: the contract the grounding stage checks
chunks through before they enter the prompt.

Retrieval does not import the guardrails (layers): the gateway builds a `DocumentScreen`
from the guard config and the injection detector (`sluice.stages.retrieval_screen`) and hands
it to the stage. The mode is the guard set's `injection.mode` for the public model or route
(`off | flag | block`, only when `document` is among its `sources`):

- `flag`: the chunks go into the prompt; `x-sluice-retrieval-guard: retrieval_injection=flag:
  <rule>` and `x-sluice-retrieval-flagged` (the chunk ids) tell the caller, and the call
  record's `guards` column gets the verdict.
- `block`: the flagged chunks are dropped before the context is built (never a silent pass:
  `retrieval_injection=block:<rule>` and `x-sluice-retrieval-dropped` name them); the answer
  is grounded on the clean chunks only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

GUARD_HEADER = "x-sluice-retrieval-guard"
GUARD_NAME = "retrieval_injection"


@dataclass(frozen=True, slots=True)
class ScreenVerdict:
    flagged: bool
    rule: str | None = None  # what decided (a rule name, "classifier", "model")
    score: float = 0.0


class DocumentScreen(Protocol):
    def mode(self, model: str) -> str:
        """`off`, `flag` or `block` for calls to this public model or route."""
        ...

    async def check(self, model: str, texts: Sequence[str]) -> list[ScreenVerdict]:
        """One verdict per text (retrieved chunk as it would enter the prompt)."""
        ...
