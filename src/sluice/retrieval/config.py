"""`retrieval` config: vector stores (OpenAI's API), hybrid search, reranking, grounded chat."""

from __future__ import annotations

from pydantic import Field, model_validator

from sluice.config_base import Frozen


class SupportJudgeConfig(Frozen):
    """An optional second check of a grounded answer (off by default): a cheap model is asked
    whether each cited claim is supported by the chunks it cites (sluice.retrieval.judge).

    A helper call charged to the call (its cost is on the call's record and budgets, like the
    semantic cache's judge). Expected cost per grounded answer: the cited chunks (at most the
    context, `context_max_tokens`, 3,000 tokens by default; each cut to `max_source_chars`)
    plus ~150 tokens of instructions and claims in, ~10-30 tokens out: about $0.0005 on a
    $0.15/M-input model. A timeout or failure leaves `grounded` as the citation check set it.
    """

    enabled: bool = False
    model: str | None = None  # a served model (the cheaper the better)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    max_claims: int = Field(default=8, ge=1, le=50)
    max_source_chars: int = Field(default=2000, ge=200, le=20_000)

    @model_validator(mode="after")
    def _model_when_enabled(self) -> SupportJudgeConfig:
        if self.enabled and not self.model:
            raise ValueError("retrieval.support_judge needs a model when enabled")
        return self


class RetrievalConfig(Frozen):
    """Knowledge collections behind `/v1/vector_stores` and grounded chat.

    `store_url`: where stores, files, chunks and vectors are durable. Empty: a SQLite file
    `retrieval.db` under `state_dir` (embedded, nothing running). A PostgreSQL URL: shared by
    replicas; each keeps its own in-memory search index and reloads a collection when the
    collection's version in the database moved (checked on every search).
    """

    enabled: bool = True
    store_url: str = "sqlite:///retrieval.db"
    chunk_max_tokens: int = Field(default=400, ge=32, le=4096)  # OpenAI's default: 800
    rrf_k: int = Field(default=60, ge=1, le=1000)
    # Sentences of the neighbouring chunks added to each hit's text at query time.
    sentence_window: int = Field(default=1, ge=0, le=10)
    rerank: bool = True  # when the shipped reranker model is installed
    rerank_top: int = Field(default=20, ge=2, le=100)
    rerank_budget_ms: float = Field(default=300.0, gt=0)
    max_file_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    max_stores_per_tenant: int = Field(default=1000, ge=1)
    # Grounded chat: how many chunks at most, and the token budget the context may take.
    context_max_chunks: int = Field(default=8, ge=1, le=50)
    context_max_tokens: int = Field(default=3000, ge=100)
    support_judge: SupportJudgeConfig = SupportJudgeConfig()
