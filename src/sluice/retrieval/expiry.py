"""`expires_after` on vector stores, as OpenAI defines it.

A store with `expires_after = {anchor: "last_active_at", days: N}` expires N days after it was
last active; `last_active_at` moves when the store is used (a search, grounded chat, a file
added or changed; `touch` writes it at most once a `TOUCH_EVERY_S` per store). Once expired
the store is `status: "expired"` for good: it can still be read, listed and deleted, but a
search, grounded chat or new file is refused (400 `vector_store_expired`, the caller's error
format), and its chunks and vectors are freed (database rows and the in-memory index) — on
first use after expiry, and by the periodic sweep (`RetrievalService.sweep_expired`).
`expired_at` on the row makes it final: changing `expires_after` afterwards does not revive
a store whose content is gone.
"""

from __future__ import annotations

from sluice.errors import InvalidRequestError
from sluice.retrieval.store import StoreRow

DAY_S = 86_400
# last_active_at is written at most this often per store (a search is not a write each time).
TOUCH_EVERY_S = 60.0


def expires_at(row: StoreRow) -> float | None:
    """When the store expires (epoch seconds), or None if it never does."""
    if row.expired_at is not None:
        return row.expired_at
    if not row.expires_after:
        return None
    return row.last_active_at + int(row.expires_after.get("days", 0)) * DAY_S


def is_expired(row: StoreRow, now: float) -> bool:
    at = expires_at(row)
    return at is not None and now >= at


def expired_error(store_id: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Vector store '{store_id[:128]}' has expired (expires_after) and can no longer be "
        "used; create a new one.",
        param="vector_store_ids",
        code="vector_store_expired",
    )
