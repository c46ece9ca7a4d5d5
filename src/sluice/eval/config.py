"""Per-route settings of live evaluation: shadow traffic and online quality sampling.

A leaf (it imports only `sluice.config_base`), so `sluice.routing.config` can put both on a
route (`routes.<name>.shadow`, `routes.<name>.online_eval`) without reaching into the eval
feature. What they do is in `sluice.eval.live`.
"""

from __future__ import annotations

from pydantic import Field

from sluice.config_base import Frozen

DEFAULT_RUBRIC = (
    "The answer is correct, relevant to the question, complete, and free of unsupported claims."
)


class ShadowConfig(Frozen):
    """Mirror a sampled share of the route's calls to `candidate` (a public model or route),
    after the caller's answer is complete, and keep both answers for judging."""

    candidate: str
    sample: float = Field(default=0.1, ge=0, le=1)
    # The mirrored calls' own tenant: their budget line and records, never the caller's.
    tenant: str = Field(default="sluice-shadow", min_length=1, max_length=255)
    queue: int = Field(default=64, ge=1, le=10_000)  # waiting mirrors; more are dropped
    concurrency: int = Field(default=2, ge=1, le=64)  # mirrors in flight at once


class OnlineEvalConfig(Frozen):
    """Judge a sampled share of the route's live answers with `judge_model` on `rubric`;
    scores go to `/metrics`, the store, and the `quality_drop` alert rule."""

    sample: float = Field(default=0.05, ge=0, le=1)
    judge_model: str
    rubric: str = Field(default=DEFAULT_RUBRIC, min_length=1, max_length=4000)
    tenant: str = Field(default="sluice-eval", min_length=1, max_length=255)
    queue: int = Field(default=64, ge=1, le=10_000)
    concurrency: int = Field(default=2, ge=1, le=64)
    # Alert (the gateway's alerting) when the mean normalized score (0-1) over `window_s`
    # falls under `alert_below`, with at least `min_scores` scores in the window. None: off.
    alert_below: float | None = Field(default=None, ge=0, le=1)
    window_s: float = Field(default=3600.0, gt=0)
    min_scores: int = Field(default=20, ge=1)
