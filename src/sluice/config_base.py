"""The base of every config model: frozen, unknown keys refused.

Feature packages define their own config sections on it (and import nothing else from Sluice),
so `sluice.config` can assemble them without import cycles.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
