"""An optional cheap-model judge: before a semantic hit is served, ask a small model whether
the new question and the stored one want the same answer.

Cosine similarity alone cannot tell paraphrases from look-alike questions that need other
answers (see the contrast guard); the judge is a second opinion for deployments that can
spend one cheap call per candidate hit. Its answer must start with "yes" to allow the hit;
anything else (or a failure, or a timeout) refuses it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sluice.identity import Identity
from sluice.pipeline.context import CallContext, Handler
from sluice.types import CallMeta, ChatRequest, ChatResponse, Message, TextPart

INSTRUCTIONS = (
    "You compare two user questions sent to an assistant. Answer 'yes' if one correct answer "
    "fully answers both (they are paraphrases), otherwise 'no' (they differ in a number, date, "
    "name, negation, direction, scope or intent). Reply with one word: yes or no."
)


def model_judge(
    handler: Handler, model: str, tenant: str = "default"
) -> Callable[[str, str], Awaitable[bool]]:
    """A judge that asks `model` through `handler` (the gateway's plan executor)."""

    async def same_question(new: str, stored: str) -> bool:
        req = ChatRequest(
            model=model,
            system=[TextPart(INSTRUCTIONS)],
            messages=[Message("user", [TextPart(f"Question A:\n{new}\n\nQuestion B:\n{stored}")])],
            temperature=0,
            max_tokens=3,
            meta=CallMeta(request_id="semantic-judge"),
        )
        result = await handler(CallContext(req, identity=Identity(tenant=tenant)))
        if not isinstance(result, ChatResponse):  # pragma: no cover - never asked to stream
            return False
        text = "".join(p.text for p in result.parts if isinstance(p, TextPart))
        return text.strip().lower().startswith("yes")

    return same_question
