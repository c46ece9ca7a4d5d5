"""The provider Protocol and the resolved `Deployment` it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sluice.config import DeploymentConfig, PriceConfig, TimeoutConfig
from sluice.types import ChatRequest, ChatResponse, EventStream


@dataclass(frozen=True, slots=True)
class Deployment:
    """One upstream model on one provider, as resolved from config."""

    id: str
    provider: str  # provider name in config
    model: str  # upstream model name
    public_names: tuple[str, ...]
    timeouts: TimeoutConfig
    price: PriceConfig | None
    context_window: int | None
    max_output_tokens: int | None
    weight: float = 1.0
    max_concurrency: int | None = None
    prompt_caching: str | None = None  # "auto" | "off"; None: the provider's setting
    min_cache_tokens: int | None = None  # None: the price table's value for the model

    @classmethod
    def from_config(cls, cfg: DeploymentConfig) -> Deployment:
        return cls(
            id=cfg.id,
            provider=cfg.provider,
            model=cfg.model,
            public_names=tuple(cfg.public_names),
            timeouts=cfg.timeouts,
            price=cfg.price,
            context_window=cfg.context_window,
            max_output_tokens=cfg.max_output_tokens,
            weight=cfg.weight,
            max_concurrency=cfg.max_concurrency,
            prompt_caching=cfg.prompt_caching,
            min_cache_tokens=cfg.min_cache_tokens,
        )


class Provider(Protocol):
    """What every provider kind implements. No retries, caching or limits in here."""

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse: ...

    def stream(self, req: ChatRequest, dep: Deployment) -> EventStream:
        """Neutral events; ends after the answer is complete, raises `UpstreamError` if not."""
        ...

    async def close(self) -> None: ...
