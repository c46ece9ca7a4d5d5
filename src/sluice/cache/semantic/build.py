"""Build the semantic cache stage from its config (the gateway calls this at startup)."""

from __future__ import annotations

from sluice.cache.semantic.config import SemanticCacheConfig
from sluice.cache.semantic.judge import model_judge
from sluice.cache.semantic.stage import (
    Calibration,
    Embedder,
    SemanticCacheStage,
    Verifier,
    default_guard,
)
from sluice.cache.semantic.store import make_store
from sluice.pipeline.context import Handler


def shared_embedder() -> Embedder:
    """The process-wide MiniLM embedder (loaded once, shared with semantic routing)."""
    from sluice.embed import get_embedder

    return get_embedder()


def shared_verifier() -> tuple[Verifier, Calibration]:
    """The shipped pair verifier and its calibration (model card); loads lazily."""
    from sluice.cache.semantic.verifier import ModelCard, get_verifier

    return get_verifier(), ModelCard.load().calibration_negatives


def semantic_stage(config: SemanticCacheConfig, executor: Handler) -> SemanticCacheStage | None:
    """The stage, or None when the section is off. `executor` serves the optional judge."""
    if not config.enabled:
        return None
    store = make_store(config.backend, config.postgres_url, config.table, config.persist_path)
    judge = model_judge(executor, config.verify.model) if config.verify.enabled else None
    return SemanticCacheStage(
        config,
        shared_embedder,
        store,
        guard=default_guard() if config.guard else None,
        judge=judge,
        verifier=shared_verifier,
    )
