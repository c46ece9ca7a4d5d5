"""A batch and its items as Sluice keeps them, and their two public shapes.

One `Batch` serves both APIs: OpenAI's Batch object (`to_openai`, statuses `validating`
... `cancelled`) and Anthropic's Message Batch (`to_anthropic`, `processing_status`
`in_progress` / `canceling` / `ended`). The item states are Sluice's own; the counts each
API shows are derived from them (`Counts`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sluice.identity import Budget, Identity, RateLimits

Wire = Literal["openai", "anthropic"]
Status = Literal[
    "validating",
    "failed",
    "in_progress",
    "finalizing",
    "completed",
    "expired",
    "cancelling",
    "cancelled",
]
ACTIVE: tuple[Status, ...] = ("in_progress", "cancelling", "finalizing")
ENDED: tuple[Status, ...] = ("failed", "completed", "expired", "cancelled")
ItemState = Literal["pending", "running", "succeeded", "errored", "cancelled", "expired"]
FINAL_ITEM_STATES: tuple[ItemState, ...] = ("succeeded", "errored", "cancelled", "expired")
WINDOWS_S = {"24h": 86_400.0, "1h": 3600.0, "30m": 1800.0, "5m": 300.0, "1m": 60.0}


def new_batch_id(wire: Wire) -> str:
    return ("batch_" if wire == "openai" else "msgbatch_") + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Counts:
    """Items per state."""

    pending: int = 0
    running: int = 0
    succeeded: int = 0
    errored: int = 0
    cancelled: int = 0
    expired: int = 0

    @classmethod
    def of(cls, by_state: dict[str, int]) -> Counts:
        return cls(**{k: v for k, v in by_state.items() if k in cls.__slots__})

    @property
    def total(self) -> int:
        return self.pending + self.running + self.finished

    @property
    def finished(self) -> int:
        return self.succeeded + self.errored + self.cancelled + self.expired

    def openai(self, total: int) -> dict[str, int]:
        return {
            "total": total,
            "completed": self.succeeded,
            "failed": self.errored + self.cancelled + self.expired,
        }

    def anthropic(self) -> dict[str, int]:
        return {
            "processing": self.pending + self.running,
            "succeeded": self.succeeded,
            "errored": self.errored,
            "canceled": self.cancelled,
            "expired": self.expired,
        }


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    tenant: str
    wire: Wire
    mode: str
    endpoint: str
    status: Status
    completion_window: str
    created_at: float
    expires_at: float
    total: int
    times: dict[str, float] = field(default_factory=dict)
    input_file_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    metadata: dict[str, str] | None = None
    errors: list[dict[str, Any]] | None = None
    counts: Counts = Counts()
    # Forward mode: {"provider", "deployment", "model", "upstream_model"}, then the
    # provider's batch "id" once submitted and "cancel_sent" once asked to cancel.
    provider: dict[str, Any] | None = None

    def to_openai(self) -> dict[str, Any]:
        t = self.times

        def at(name: str) -> int | None:
            value = t.get(name)
            return None if value is None else int(value)

        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": None if not self.errors else {"object": "list", "data": self.errors},
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": int(self.created_at),
            "in_progress_at": at("in_progress_at"),
            "expires_at": int(self.expires_at),
            "finalizing_at": at("finalizing_at"),
            "completed_at": at("completed_at"),
            "failed_at": at("failed_at"),
            "expired_at": at("expired_at"),
            "cancelling_at": at("cancelling_at"),
            "cancelled_at": at("cancelled_at"),
            "request_counts": self.counts.openai(self.total),
            "metadata": self.metadata,
        }

    def to_anthropic(self, results_url: str) -> dict[str, Any]:
        ended = self.status in ENDED
        processing = "ended" if ended else "canceling" if self.status == "cancelling" else None
        ended_at = next(
            (
                self.times[k]
                for k in ("completed_at", "cancelled_at", "expired_at", "failed_at")
                if k in self.times
            ),
            None,
        )
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": processing or "in_progress",
            "request_counts": self.counts.anthropic(),
            "ended_at": _iso(ended_at) if ended else None,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "archived_at": None,
            "cancel_initiated_at": _iso(self.times.get("cancelling_at")),
            "results_url": results_url if ended else None,
        }


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class NewItem:
    idx: int  # the input line number (1-based) or the request's position
    custom_id: str
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Claim:
    """An item a worker holds until `lease_until` (after that it may be claimed again)."""

    batch_id: str
    idx: int
    custom_id: str
    body: str
    attempt: int
    wire: Wire
    identity: Identity


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one item produced: the HTTP status and the body its API would have answered,
    and its spend-ledger row held back by the pipeline (`sluice.state.charges`), written
    with the result."""

    status: int
    body: dict[str, Any]
    request_id: str
    charge: str | None = None

    @property
    def ok(self) -> bool:
        return self.status < 400


def charge_key(batch_id: str, idx: int) -> str:
    """The spend ledger's `once_key` of a batch item: charged once, whatever reruns it."""
    return f"batch:{batch_id}:{idx}"


def identity_to_json(identity: Identity) -> dict[str, Any]:
    return {
        "key_id": identity.key_id,
        "tenant": identity.tenant,
        "team": identity.team,
        "user": identity.user,
        "tier": identity.tier,
        "allowed_models": list(identity.allowed_models),
        "limits": identity.limits.model_dump(),
        "budgets": [b.model_dump() for b in identity.budgets],
        "metadata": identity.metadata,
    }


def identity_from_json(data: dict[str, Any]) -> Identity:
    """The creator's identity, as resolved when the batch was made: items run as it."""
    plain = not data.get("budgets") and not data.get("allowed_models")
    if data.get("key_id") is None and data.get("tenant", "default") == "default" and plain:
        return Identity.anonymous()
    return Identity(
        key_id=data.get("key_id"),
        tenant=str(data.get("tenant", "default")),
        team=data.get("team"),
        user=data.get("user"),
        tier=data.get("tier"),
        allowed_models=tuple(data.get("allowed_models") or ()),
        limits=RateLimits.model_validate(data.get("limits") or {}),
        budgets=tuple(Budget.model_validate(b) for b in data.get("budgets") or ()),
        metadata=dict(data.get("metadata") or {}),
    )
