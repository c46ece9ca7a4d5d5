"""`cache.semantic` config: when a request may be answered by a stored answer to a question
that means the same, and where those answers live."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluice.config_base import Frozen

DEFAULT_FALSE_HIT_RATE = 0.005  # look-alikes served, at most (calibrated, see calibration.py)
DEFAULT_MIN_SIMILARITY = 0.5  # cosine floor of the candidates the verifier reads


class SemanticRouteConfig(Frozen):
    """Per public model/route overrides; an unset field keeps the section's value."""

    enabled: bool | None = None
    target_false_hit_rate: float | None = Field(default=None, gt=0, le=0.5)
    threshold: float | None = Field(default=None, gt=0, le=1)
    ttl_s: float | None = Field(default=None, gt=0)


class SemanticVerifyConfig(Frozen):
    """An optional cheap-model judge asked "same question?" before an uncertain hit is served:
    one whose verifier score is within `band` above the threshold. It can only refuse (a
    timeout or failure refuses too), so the calibrated false-hit bound still holds."""

    enabled: bool = False
    model: str = "gpt-4o-mini"  # a public model name this gateway serves
    timeout_s: float = Field(default=5.0, gt=0)
    band: float = Field(default=0.1, ge=0, le=1)  # 1.0: ask about every semantic hit


class SemanticCacheConfig(Frozen):
    """Answers found by the meaning of the last user message (MiniLM embeddings).

    A hit needs an identical scope (tenant, route, system prompt, tools, response format and
    every earlier turn) and then either the same canonical question (the normalized tier) or
    cosine >= `min_similarity`, the contrast guard passing (numbers, entities, dates,
    negation, direction, word swaps) and the trained pair verifier scoring at or above the
    threshold calibrated for `target_false_hit_rate`; when `verify` is on, a judge model
    also checks hits in the uncertain band."""

    enabled: bool = False
    # At most this share of look-alike questions (another answer needed) is served; the
    # verifier threshold is read off the calibration split for it (0.5%: ~50-60% of
    # paraphrases served on the held-out set, BENCHMARKS.md).
    target_false_hit_rate: float = Field(default=DEFAULT_FALSE_HIT_RATE, gt=0, le=0.5)
    min_similarity: float = Field(default=DEFAULT_MIN_SIMILARITY, ge=0, le=1)
    candidates: int = Field(default=2, ge=1, le=16)  # nearest entries the verifier reads
    normalized: bool = True  # the canonical-form exact tier (no model needed)
    verifier: bool = True  # False: the v1 rule, cosine >= `threshold` plus the guard
    threshold: float = Field(default=0.95, gt=0, le=1)  # cosine; only with verifier: false
    models: list[str] | None = None  # public model/route names to cache; None: every model
    ttl_s: float = Field(default=3600, gt=0)
    max_entries: int = Field(default=10_000, gt=0)  # per replica, least recently used evicted
    # Scopes with at least this many entries also search an HNSW graph (needs usearch), then
    # re-score exactly; None: always exact brute force (fine to ~50-100k entries).
    ann_min_entries: int | None = Field(default=None, gt=0)
    namespace: str = "v1"  # change it to stop reading every stored answer at once
    guard: bool = True  # refuse hits whose questions differ in a number/entity/date/...
    cache_nondeterministic: bool = False  # also cache requests whose temperature is not 0
    cache_tool_results: bool = False  # also cache conversations that carry tool results
    embed_timeout_s: float = Field(default=2.0, gt=0)  # a slower embedding is a miss
    max_question_chars: int = Field(default=4000, gt=0)  # longer last messages bypass
    routes: dict[str, SemanticRouteConfig] = Field(default_factory=dict)
    verify: SemanticVerifyConfig = SemanticVerifyConfig()
    # memory: this replica only (persist_path: an SQLite file that survives restarts);
    # postgres: shared by every replica, kept in step by LISTEN/NOTIFY.
    backend: Literal["memory", "postgres"] = "memory"
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    table: str = "sluice_semantic_cache"
    persist_path: str | None = None
