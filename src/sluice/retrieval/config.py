"""`retrieval` config: vector stores (OpenAI's API), hybrid search, reranking, grounded chat."""

from __future__ import annotations

from pydantic import Field

from sluice.config_base import Frozen


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
