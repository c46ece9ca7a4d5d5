"""`CallRecord`: one row of telemetry per call (and per upstream attempt).

A client call produces one record with `kind="call"`, built when the answer is complete (or
the stream ended): its tokens and cost are the totals over every attempt it took, `attempts`
is how many upstream attempts that was, and `deployment` is what finally served it (or
failed last). A pipeline that also records attempts emits one `kind="attempt"` record per
upstream try, with `attempt_of` set to the call's `request_id`, `attempts` set to the
attempt's 1-based number, and that attempt's own tokens, cost, latency and status.
Aggregates count only `kind="call"` records, so totals are never counted twice.

Records carry previews only if the pipeline puts them there; they must go through
`sluice.observe.redact.preview` first.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Literal

RecordKind = Literal["call", "attempt"]
CacheStatus = Literal["miss", "exact", "normalized", "semantic", "bypass", "stale"]

# "stale": an expired exact entry served because the upstream plan failed.
CACHE_HITS: frozenset[str] = frozenset({"exact", "normalized", "semantic", "stale"})


# Not frozen: a frozen dataclass sets its 38 fields through object.__setattr__, which made
# building a record cost 9.5 µs instead of 2 (measured); treat records as immutable.
@dataclass(slots=True, kw_only=True)
class CallRecord:
    request_id: str
    parent_request_id: str | None = None
    attempt_of: str | None = None  # the call's request id; None on the call record itself
    kind: RecordKind = "call"
    trace_id: str | None = None
    ts: float = field(default_factory=time.time)  # epoch seconds when the call started
    # who
    tenant: str | None = None
    key_id: str | None = None
    user_id: str | None = None
    feature: str | None = None
    session: str | None = None
    # where it went
    route: str | None = None
    model_requested: str = ""
    deployment: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    attempts: int = 1
    fallback_triggered: bool = False
    cache_status: CacheStatus | None = None
    cache_similarity: float | None = None
    # semantic cache (r0003): the pair verifier's score and the decision in words, e.g.
    # "semantic: verifier 0.95 >= 0.93" or "miss: guard: number" (at most 120 characters)
    cache_score: float | None = None
    cache_decision: str | None = None
    stream: bool = False
    # what it used and cost
    input_tokens: int = 0  # all prompt tokens, cached ones included (sluice.types.Usage)
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal | None = None  # None: no price known, never 0 for "unknown"
    cost_saved_usd: Decimal | None = None
    # "provider": the provider's reported usage; "estimated": a stream that was dropped or
    # cut before its usage arrived, charged for what it delivered (sluice.stages.delivered)
    usage_source: str | None = None
    # how it went
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    finish_reason: str | None = None
    status: int = 200
    error_type: str | None = None
    # content, only ever hashed or redacted
    system_prompt_hash: str | None = None
    input_preview: str | None = None
    output_preview: str | None = None
    # routing (sluice.routing): "strategy: reason -> target" when a route decided, and the
    # call at the route's reference (strong) model's price minus what it cost
    route_decision: str | None = None
    routing_saved_usd: Decimal | None = None
    # guardrails (sluice.guardrails): "name=verdict[:rule], ..." as in x-sluice-guard
    guards: str | None = None
    # grounded chat (sluice.retrieval): context tokens added to the prompt (part of
    # input_tokens), their cost at the deployment's input price, sources given, and the
    # citation check: "ok" | "unsupported:N" | "no_citations" | "no_sources" | "cut"
    retrieval_tokens: int | None = None
    retrieval_cost_usd: Decimal | None = None
    retrieval_sources: int | None = None
    grounded: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict: every field, Decimals as strings."""
        out = {name: getattr(self, name) for name in FIELD_NAMES}
        for name in _DECIMAL_FIELDS:
            value = out[name]
            if value is not None:
                out[name] = str(value)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CallRecord:
        """Read back a `to_json()` dict (or a database row mapping); unknown keys are ignored,
        missing ones get their defaults."""
        values = {name: data[name] for name in FIELD_NAMES if name in data}
        for name in _DECIMAL_FIELDS:
            value = values.get(name)
            if value is not None and not isinstance(value, Decimal):
                values[name] = Decimal(str(value))
        return cls(**values)

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    @property
    def cache_hit(self) -> bool:
        return self.cache_status in CACHE_HITS


FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(CallRecord))
_DECIMAL_FIELDS = ("cost_usd", "cost_saved_usd", "routing_saved_usd", "retrieval_cost_usd")


def prompt_hash(text: str) -> str:
    """A short stable fingerprint of a system prompt (sha256, 16 hex characters): enough to
    group calls by prompt version without storing the prompt."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
