"""`Purgeable`: what a cache offers the admin API (`sluice.web.cache_admin`).

Defined here, in the feature layer, so caches and the gateway name it without importing
the web layer above them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Protocol


class Purgeable(Protocol):
    """A cache the admin API can purge and report on."""

    cache_kind: str  # its name in requests and answers: "exact", "semantic", …

    def purge(
        self,
        entry_id: str | None = None,
        route: str | None = None,
        tenant: str | None = None,
    ) -> int | Awaitable[int]:
        """Delete by one selector (none: everything); how many entries were deleted."""
        ...

    def stats_json(self) -> Mapping[str, Any] | Awaitable[Mapping[str, Any]]:
        """JSON-safe counters: entries, bytes, hits, misses, rates, savings."""
        ...
