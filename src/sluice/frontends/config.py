"""`EndpointsConfig`: the Responses API, embeddings and token counting endpoints."""

from __future__ import annotations

from pydantic import Field

from sluice.config_base import Frozen


class ResponsesConfig(Frozen):
    """`POST /v1/responses`: answers are stored per tenant for `previous_response_id` and
    `GET /v1/responses/{id}` (unless the call says `store: false`)."""

    enabled: bool = True
    # SQLAlchemy URL: sqlite:///path.db (embedded) or postgresql+psycopg://... (shared by
    # replicas). null: the call records' database (observability.records.store_url).
    store_url: str | None = None
    table: str = Field(default="sluice_responses", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
    ttl_s: float = Field(default=30 * 86400, gt=0)  # OpenAI keeps responses for 30 days


class EmbeddingsConfig(Frozen):
    """`POST /v1/embeddings`: forwarded to OpenAI-kind deployments of the model, or served
    by the local MiniLM model (the `embedding` section) under `local_model`."""

    enabled: bool = True
    local_model: str | None = "local-minilm"  # null: no local model
    max_inputs: int = Field(default=2048, ge=1)  # OpenAI's limit per request


class EndpointsConfig(Frozen):
    responses: ResponsesConfig = ResponsesConfig()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    count_tokens: bool = True  # POST /v1/messages/count_tokens (Anthropic's shape)
