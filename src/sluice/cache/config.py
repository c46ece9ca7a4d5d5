"""Config sections owned by the cache package (assembled by `sluice.config`).

Kept here, importing only `sluice.config_base`, so `sluice.config` can embed them without
import cycles.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sluice.config_base import Frozen

# Automatic provider prompt-cache breakpoints (Anthropic `cache_control`): on or off.
PromptCaching = Literal["auto", "off"]


class ExactRouteConfig(Frozen):
    """Per-route overrides of the exact cache (a route is the public model name asked for).

    `namespace` is appended to the global one: bump it to drop only this route's entries.
    """

    enabled: bool = True
    ttl_s: float | None = Field(default=None, gt=0)  # None: the global ttl_s
    namespace: str | None = None  # None: the global namespace only
