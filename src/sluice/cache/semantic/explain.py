"""`sluice cache explain "stored question" "new question"`: what the semantic cache would do.

Runs the same decision rule as the stage (`decision`), locally, with the shipped embedder,
contrast guard, pair verifier and calibration: the tier that would answer, the cosine, the
guard's reason, the verifier's score and the threshold for the target false-hit rate.
"""

from __future__ import annotations

from sluice.cache.semantic.calibration import threshold_for
from sluice.cache.semantic.config import DEFAULT_FALSE_HIT_RATE, DEFAULT_MIN_SIMILARITY
from sluice.cache.semantic.decision import Verdict, decide_many
from sluice.cache.semantic.guard import contrast
from sluice.cache.semantic.nearverbatim import near_verbatim
from sluice.cache.semantic.normalize import canonical
from sluice.cache.semantic.verifier import ModelCard, get_verifier


def explain(
    stored: str,
    question: str,
    rate: float = DEFAULT_FALSE_HIT_RATE,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
) -> tuple[Verdict, list[str]]:
    """The verdict for serving `stored`'s answer to `question`, and lines explaining it."""
    from sluice.embed import get_embedder

    vectors = get_embedder().embed_sync([stored, question])
    similarity = float(vectors[0] @ vectors[1])
    card = ModelCard.load()
    threshold = threshold_for(card, rate)
    verifier = get_verifier()
    (verdict,) = decide_many(
        [(question, stored, similarity)], verifier.pair_scores, threshold, min_similarity, contrast
    )
    score = verdict.score if verdict.score is not None else verifier.score(question, stored)
    lines = [
        f"stored:     {stored!r}",
        f"question:   {question!r}",
        f"canonical:  {canonical(stored)!r} / {canonical(question)!r}",
        f"cosine:     {similarity:.3f} (floor {min_similarity})",
        f"near-verbatim: {near_verbatim(question, stored) or 'no (not a typo or moved phrase)'}",
        f"guard:      {contrast(question, stored) or 'no difference found'}",
        f"verifier:   {score:.3f} (threshold {threshold:.3f} for a {rate:.2%} false-hit target;"
        f" model {card.version})",
        f"decision:   {verdict.describe()}",
    ]
    return verdict, lines
