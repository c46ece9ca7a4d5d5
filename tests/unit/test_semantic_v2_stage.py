"""Semantic cache v2 in the stage: the normalized tier, the calibrated verifier decision,
per-route false-hit targets, per-entry tightening, the judge band and failing closed."""

from __future__ import annotations

from typing import Any

from sluice.cache.semantic.config import SemanticCacheConfig
from sluice.cache.semantic.stage import SemanticCacheStage
from sluice.identity import Identity
from sluice.pipeline.context import CallContext
from sluice.types import CallMeta, ChatRequest, Message, TextPart
from tests.unit.semantic_fakes import Clock, FakeEmbedder, Upstream

Q = "How do I reset my password?"
PARA = "I forgot my password, how can I set a new one?"
LOOK = "How do I reset my PIN?"
# Look-alike decision scores of a calibration split: 1,000 values 0.000 .. 0.999.
CALIBRATION = tuple(i / 1000 for i in range(1000))


class FakeVerifier:
    """Scores chosen by the test per (question, stored) pair; counts calls; can break."""

    def __init__(self) -> None:
        self.scores: dict[tuple[str, str], float] = {}
        self.calls = 0
        self.fail = False

    async def ascores(self, question: str, candidates: list[str]) -> list[float]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("verifier broke")
        return [self.scores.get((question, c), 0.0) for c in candidates]


def request(text: str, model: str = "gpt-4o-mini") -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[Message("user", [TextPart(text)])],
        temperature=0,
        meta=CallMeta(request_id="r"),
    )


class Harness:
    def __init__(self, judge: Any = None, **config: Any) -> None:
        self.embedder = FakeEmbedder()
        self.embedder.alias(PARA, Q, 0.80)
        self.embedder.alias(LOOK, Q, 0.97)
        self.verifier = FakeVerifier()
        self.upstream = Upstream()
        self.stage = SemanticCacheStage(
            SemanticCacheConfig(**{"enabled": True, **config}),
            lambda: self.embedder,
            guard=None,
            judge=judge,
            clock=Clock(),
            verifier=lambda: (self.verifier, CALIBRATION),
        )

    async def ask(self, text: str, model: str = "gpt-4o-mini") -> CallContext:
        ctx = CallContext(request(text, model), identity=Identity(key_id="k-acme", tenant="acme"))
        await self.stage(ctx, self.upstream)
        return ctx


async def test_trivial_variation_is_served_by_the_normalized_tier_without_embedding() -> None:
    h = Harness()
    await h.ask(Q)
    calls = h.embedder.calls
    ctx = await h.ask("  hi, HOW do I reset my password??? thanks!")
    assert ctx.response_headers["x-sluice-cache"] == "normalized"
    assert ctx.cache_status == "normalized"
    assert h.embedder.calls == calls  # no embedding, no verifier
    assert h.verifier.calls == 1  # the warm-up only
    assert h.upstream.calls == 1
    stats = h.stage.stats_json()
    assert stats["hits_normalized"] == 1 and stats["hits_semantic"] == 0


async def test_the_normalized_tier_never_merges_a_different_number() -> None:
    h = Harness()
    await h.ask("Can I return a blender within 14 days?")
    ctx = await h.ask("can i return a blender within 30 days")
    assert ctx.response_headers["x-sluice-cache"] == "miss"


async def test_threshold_comes_from_the_target_false_hit_rate() -> None:
    h = Harness()
    assert h.stage.threshold(0.005) > 1  # not started: no calibration, nothing semantic
    await h.ask(Q)
    # (k + 1) / (n + 1) <= 0.5%: k = 4 look-alikes may sit at/above it -> just above 0.995
    assert 0.995 < h.stage.threshold(0.005) < 0.9951
    assert 0.99 < h.stage.threshold(0.01) < 0.9901
    h.verifier.scores[(PARA, Q)] = 0.996
    ctx = await h.ask(PARA)
    assert ctx.response_headers["x-sluice-cache"] == "semantic"
    assert ctx.response_headers["x-sluice-cache-score"] == "0.996"
    assert ctx.response_headers["x-sluice-cache-similarity"] == "0.800"


async def test_a_score_under_the_threshold_is_a_miss_and_per_route_rates_apply() -> None:
    h = Harness(routes={"lenient": {"target_false_hit_rate": 0.05}})
    await h.ask(Q)
    await h.ask(Q, model="lenient")
    h.verifier.scores[(PARA, Q)] = 0.97
    assert (await h.ask(PARA)).response_headers["x-sluice-cache"] == "miss"
    lenient = await h.ask(PARA, model="lenient")
    assert lenient.response_headers["x-sluice-cache"] == "semantic"


async def test_candidates_under_the_cosine_floor_are_never_verified() -> None:
    h = Harness(min_similarity=0.9)
    await h.ask(Q)
    h.verifier.scores[(PARA, Q)] = 1.0
    before = h.verifier.calls
    assert (await h.ask(PARA)).response_headers["x-sluice-cache"] == "miss"
    assert h.verifier.calls == before


async def test_a_broken_verifier_fails_closed() -> None:
    h = Harness()
    await h.ask(Q)
    h.verifier.scores[(PARA, Q)] = 1.0
    h.verifier.fail = True
    ctx = await h.ask(PARA)
    assert ctx.response_headers["x-sluice-cache"] == "miss"
    assert h.stage.stats.verifier_errors == 1


async def test_a_reported_entry_is_never_served_by_meaning_again() -> None:
    h = Harness()
    await h.ask(Q)
    h.verifier.scores[(PARA, Q)] = 1.0
    ctx = await h.ask(PARA)
    assert ctx.response_headers["x-sluice-cache"] == "semantic"
    assert h.stage.catalog is not None
    (entry_id,) = h.stage.catalog.select()
    h.stage.report_wrong(entry_id)
    assert (await h.ask(PARA)).response_headers["x-sluice-cache"] == "miss"
    typo = "How do I reset my passwrod?"  # near-verbatim: served without the verifier ...
    h.embedder.alias(typo, Q, 0.9)
    assert (await h.ask(typo)).response_headers["x-sluice-cache"] == "miss"  # ... but not now


async def test_the_judge_reads_only_the_uncertain_band_and_can_only_refuse() -> None:
    asked: list[tuple[str, str]] = []

    async def judge(a: str, b: str) -> bool:
        asked.append((a, b))
        return False

    h = Harness(judge=judge, verify={"enabled": True, "band": 0.003})
    await h.ask(Q)
    h.verifier.scores[(PARA, Q)] = 0.999  # above threshold + band: no judge
    assert (await h.ask(PARA)).response_headers["x-sluice-cache"] == "semantic"
    assert asked == []
    other = "What steps reset my password?"
    h.embedder.alias(other, Q, 0.85)
    h.verifier.scores[(other, Q)] = 0.996  # in the band: the judge refuses, entry tightens
    assert (await h.ask(other)).response_headers["x-sluice-cache"] == "miss"
    assert asked == [(other, Q)]
    assert h.stage.stats.judge_refused == 1


async def test_verifier_off_keeps_the_v1_cosine_rule() -> None:
    h = Harness(verifier=False, threshold=0.95)
    await h.ask(Q)
    assert (await h.ask(LOOK)).response_headers["x-sluice-cache"] == "semantic"  # 0.97
    assert (await h.ask(PARA)).response_headers["x-sluice-cache"] == "miss"  # 0.80


async def test_the_decision_and_score_go_to_the_call_record_without_the_question() -> None:
    h = Harness()
    await h.ask(Q)
    h.verifier.scores[(PARA, Q)] = 0.996
    hit = await h.ask(PARA)
    assert hit.cache_status == "semantic" and hit.cache_score == 0.996
    assert hit.cache_decision is not None and hit.cache_decision.startswith("SERVE (semantic)")
    normalized = await h.ask("  hi, how do I reset my password")
    assert normalized.cache_decision == "SERVE (normalized): same canonical form"
    assert normalized.cache_score is None


async def test_a_typo_is_served_without_the_verifier_and_its_miss_reason_is_recorded() -> None:
    h = Harness()
    await h.ask(Q)
    typo = "How do I reset my passwrod?"
    h.embedder.alias(typo, Q, 0.45)  # a typo can cost the embedding much: under the floor
    before = h.verifier.calls
    ctx = await h.ask(typo)
    assert ctx.response_headers["x-sluice-cache"] == "semantic"
    assert "near-verbatim (typo)" in (ctx.cache_decision or "")
    assert h.verifier.calls == before
    h.verifier.scores[(LOOK, Q)] = 0.1
    miss = await h.ask(LOOK)
    assert miss.response_headers["x-sluice-cache"] == "miss"
    assert miss.cache_score == 0.1
    decision = miss.cache_decision or ""
    assert decision.startswith("MISS") and "PIN" not in decision
