"""`BatchConfig`: how batches run (a leaf: core only)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluice.config_base import Frozen

BatchMode = Literal["run", "forward"]


class BatchConfig(Frozen):
    """`/v1/batches` and `/v1/messages/batches`.

    `mode: run` executes every item through Sluice's own pipeline (caches, routing, budgets,
    fallbacks) on background workers, at most `run_share` of each deployment's concurrency
    (`max_concurrency`, else `max_concurrency` here), so interactive calls keep their
    headroom. `mode: forward` hands the batch to the provider's own batch API (half price);
    `models` overrides the mode per public model or route."""

    enabled: bool = True
    store_url: str = "sqlite:///sluice.db"
    mode: BatchMode = "run"
    models: dict[str, BatchMode] = Field(default_factory=dict)
    run_share: float = Field(default=0.5, gt=0, le=1)
    max_concurrency: int = Field(default=16, ge=1)  # batch items in flight per gateway
    max_items: int = Field(default=50_000, ge=1)  # OpenAI's limit per batch
    lease_s: float = Field(default=120.0, gt=0)  # an item running longer is run again
    max_attempts: int = Field(default=3, ge=1)  # claims of one item before it errors
    poll_s: float = Field(default=0.2, gt=0)  # how often an idle worker looks for work
    completion_windows: list[str] = Field(default_factory=lambda: ["24h"])
