"""`SemanticCatalog`: one replica's semantic entries — vectors in a `VectorIndex`, and beside
them the question each answer was given to (for the contrast guard), the stored answer, and
the labels purges select on (tenant, route).

The catalog evicts its own least recently used entry before the index is full, so the index
never drops an entry the catalog still holds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sluice.cache.semantic.index import VectorIndex
from sluice.cache.semantic.normalize import canonical

Vector = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class SemanticEntry:
    id: str
    tenant: str
    route: str
    scope: str
    question: str
    vector: Vector  # float32, L2-normalised
    blob: bytes  # sluice.cache.backends.encode_response_blob
    created_at: float  # epoch seconds
    expires_at: float

    @property
    def nbytes(self) -> int:
        return len(self.blob) + len(self.question.encode()) + int(self.vector.nbytes)


@dataclass(frozen=True, slots=True)
class Match:
    entry: SemanticEntry
    similarity: float


class SemanticCatalog:
    def __init__(
        self,
        dim: int,
        max_entries: int,
        clock: Callable[[], float] = time.time,
        ann_min_entries: int | None = None,
    ) -> None:
        self.dim = dim
        self.max_entries = max_entries
        self.clock = clock
        self._index = VectorIndex(
            dim, max_entries + 1, clock=clock, ann_min_entries=ann_min_entries
        )
        self._entries: OrderedDict[str, SemanticEntry] = OrderedDict()  # oldest use first
        # (scope, canonical question) -> entry id: the normalized tier's exact lookup
        self._canonical: dict[tuple[str, str], str] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    @property
    def nbytes(self) -> int:
        """Stored answers and questions plus the index arrays."""
        return self._bytes + self._index.nbytes

    def get(self, entry_id: str) -> SemanticEntry | None:
        return self._entries.get(entry_id)

    def add(self, entry: SemanticEntry) -> list[str]:
        """Add (or replace) an entry; returns the ids evicted to make room."""
        if entry.expires_at <= self.clock():
            return []
        self.remove(entry.id)
        evicted: list[str] = []
        while len(self._entries) >= self.max_entries:
            oldest = next(iter(self._entries))
            self.remove(oldest)
            evicted.append(oldest)
        self._index.add(entry.scope, entry.id, entry.vector, entry.expires_at)
        self._entries[entry.id] = entry
        self._canonical[(entry.scope, canonical(entry.question))] = entry.id
        self._bytes += entry.nbytes
        return evicted

    def search(self, scope: str, vector: Vector, min_score: float, k: int = 5) -> list[Match]:
        """Live entries of `scope` at or above `min_score`, best first."""
        matches: list[Match] = []
        for entry_id, score in self._index.search(scope, vector, min_score, k):
            entry = self._entries.get(entry_id)
            if entry is None or entry.expires_at <= self.clock():
                continue
            matches.append(Match(entry, score))
        return matches

    def find_canonical(self, scope: str, question: str) -> SemanticEntry | None:
        """The live entry of `scope` whose question has `question`'s canonical form."""
        entry_id = self._canonical.get((scope, canonical(question)))
        entry = self._entries.get(entry_id) if entry_id is not None else None
        if entry is None or entry.expires_at <= self.clock():
            return None
        return entry

    def touch(self, entry_id: str) -> None:
        if entry_id in self._entries:
            self._entries.move_to_end(entry_id)

    def remove(self, entry_id: str) -> bool:
        entry = self._entries.pop(entry_id, None)
        if entry is None:
            return False
        self._index.remove(entry_id)
        self._bytes -= entry.nbytes
        key = (entry.scope, canonical(entry.question))
        if self._canonical.get(key) == entry_id:
            del self._canonical[key]
        return True

    def select(self, tenant: str | None = None, route: str | None = None) -> list[str]:
        """Ids of the entries with this tenant and/or route (all when both are None)."""
        return [
            e.id
            for e in self._entries.values()
            if (tenant is None or e.tenant == tenant) and (route is None or e.route == route)
        ]

    def purge(self, tenant: str | None = None, route: str | None = None) -> int:
        ids = self.select(tenant, route)
        for entry_id in ids:
            self.remove(entry_id)
        return len(ids)

    def expire(self) -> int:
        """Drop every expired entry; returns how many."""
        now = self.clock()
        dead = [e.id for e in self._entries.values() if e.expires_at <= now]
        for entry_id in dead:
            self.remove(entry_id)
        return len(dead)
