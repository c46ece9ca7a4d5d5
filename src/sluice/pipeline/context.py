"""What flows through the pipeline, and the stage signature.

A leaf of the core layer: at run time it imports only `sluice.types` and `sluice.identity`
(the deployment type is named for the type checker only), so every stage and feature can use
it without cycles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sluice.identity import Credentials, Identity
from sluice.types import ChatRequest, ChatResponse, EventStream, Usage

if TYPE_CHECKING:
    from sluice.providers.base import Deployment

log = logging.getLogger("sluice.pipeline")

Result = ChatResponse | EventStream
Handler = Callable[["CallContext"], Awaitable[Result]]
Stage = Callable[["CallContext", Handler], Awaitable[Result]]


@dataclass(slots=True)
class Attempt:
    """One upstream call the executor made for a request. Not frozen: the settle stage fills
    in the answer's tokens and cost in place (`dataclasses.replace` cost ~4 µs a call)."""

    deployment: str
    started: float  # epoch seconds
    latency_ms: float
    status: int  # 200, or the status the failure maps to
    error_type: str | None = None
    # Filled by the settle stage once the attempt's answer is settled.
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal | None = None


@dataclass(slots=True)
class CallContext:
    """One call on its way through the pipeline: its inputs, then each stage's outcome.

    Who writes what (stage order: `sluice.stages.build`):

    - `request`: the entry point; after that only `rewrite()`, which logs each change (token
      policy, router and cascade, structured output, budget downgrade).
    - `started`, `credentials`: the entry point (inputs).
    - `identity`: the auth stage (helper calls made for a call copy its identity).
    - `over_soft_budget`: limits and budgets.
    - `route`, `route_decision`, `route_reference`: the router.
    - `cache_status`, `cache_similarity`: the caches (exact, semantic).
    - `skip_models`: structured output (next model); the cascade resets it when it escalates.
    - `deployment`, `attempts`, `fallback`, `degraded`, `attempt_log`: the plan executor
      (the exact cache clears `degraded` when it serves a real stale answer instead).
    - `usage`, `cost_usd`, `cost_known`: settle (`add_child_cost` for helper calls).
    - `last_response`: settle; the caches and idempotency when they answer.
    - `retrieval_tokens`, `retrieval_sources`, `grounded`: the grounding stage (streams: at
      their end), for the call record.
    - `response_headers`: each stage adds its own `x-sluice-*` headers, never another's.
    - `on_settled`: listeners of limits and the agent guard, called by settle.
    - `hold_charge`: the entry point (batch items, jobs) sets it, limits fills it.
    - `mask_text`: the guard stage with `pii.mode: mask` (this call's masker, for text later
      stages add to the prompt: retrieved chunks); the mapping stays in the call's memory.
    """

    request: ChatRequest
    started: float = field(default_factory=time.perf_counter)
    credentials: Credentials = field(default_factory=Credentials)
    identity: Identity = field(default_factory=Identity.anonymous)
    deployment: Deployment | None = None
    attempts: int = 0  # upstream calls made for this request
    fallback: bool = False  # served (or tried) by a model other than the one asked for
    degraded: bool = False  # the plan failed and the configured degrade answer was given
    skip_models: int = 0  # start the plan at this model (structured output escalates)
    # Mid-stream failover (sluice.reliability.midstream): deployments that cut this call's
    # stream, and the continuation request shaped for a provider kind ("openai"|"anthropic").
    exclude_deployments: set[str] = field(default_factory=set)
    rewrite_for: Callable[[str], ChatRequest] | None = None
    cache_status: str | None = None  # "miss" | "exact" | "semantic" | "stale" | "bypass"
    cache_similarity: float | None = None  # cosine of a semantic cache hit
    cache_score: float | None = None  # the semantic cache's pair-verifier score (hit or not)
    cache_decision: str | None = None  # the semantic cache's decision, one bounded line
    cache_saved_usd: Decimal | None = None  # a hit: what the answer cost the first time
    response_headers: dict[str, str] = field(default_factory=dict)
    # Grounded chat (sluice.retrieval.stage): context tokens added, sources given, and the
    # citation check ("ok" | "unsupported:N" | "no_citations" | "no_sources" | "cut").
    retrieval_tokens: int | None = None
    retrieval_sources: int | None = None
    grounded: str | None = None
    route: str | None = None  # the public route name the caller asked for (routing on)
    route_decision: str | None = None  # "strategy: reason", also sent as x-sluice-route-decision
    route_reference: str | None = None  # the route's strong model, for "saved by routing"
    over_soft_budget: bool = False  # set by budgets: routes pick their cheapest target
    # Filled by the settle stage after every upstream answer (streams: when they end).
    usage: Usage = field(default_factory=Usage)  # summed over repairs and escalations
    cost_usd: Decimal | None = None  # None while any part of it has no known price
    cost_known: bool = True
    usage_source: str | None = None  # "provider" | "estimated" (a dropped or cut stream)
    last_response: ChatResponse | None = None  # the last settled answer (streams: collected)
    attempt_log: list[Attempt] = field(default_factory=list)
    # Called with each settled upstream answer's cost (None: unknown price).
    on_settled: list[Callable[[Decimal | None], None]] = field(default_factory=list)
    mask_text: Callable[[str], str] | None = None
    # Work the queue may run twice (a batch item, an async job): its caller sets a list and
    # limits puts the call's spend-ledger row there instead of in the ledger; the caller
    # writes it with the result, exactly once (sluice.state.charges).
    hold_charge: list[Any] | None = None

    def rewrite(self, request: ChatRequest, by: str) -> None:
        """Replace the request the rest of the pipeline sees: the one way stages change it
        (token policy, router, cascade, structured output, budget downgrades). Logged on
        `sluice.pipeline` at DEBUG with who changed what; the caller's original is gone."""
        if log.isEnabledFor(logging.DEBUG):
            old = self.request
            log.debug(
                "request %s rewritten by %s: model %s -> %s, messages %d -> %d, "
                "max_tokens %s -> %s",
                old.meta.request_id,
                by,
                old.model,
                request.model,
                len(old.messages),
                len(request.messages),
                old.max_tokens,
                request.max_tokens,
            )
        self.request = request

    @property
    def end_user(self) -> str | None:
        """The end user of the call: its `user` label, else the virtual key's owner."""
        return self.request.meta.user or self.identity.user


# The call being served, for helper model calls made on its behalf deep inside a strategy
# (a routing classifier) that must be charged to it. Set only around such strategies.
CURRENT_CALL: ContextVar[CallContext | None] = ContextVar("sluice_current_call", default=None)


def add_child_cost(ctx: CallContext, child: CallContext) -> None:
    """Charge a helper call (a summary, a classifier label) to the call it served."""
    total, used = ctx.usage, child.usage
    total.input_tokens += used.input_tokens
    total.output_tokens += used.output_tokens
    total.cache_read_tokens += used.cache_read_tokens
    total.cache_write_tokens += used.cache_write_tokens
    if not child.cost_known:
        ctx.cost_known = False
        ctx.cost_usd = None
    elif ctx.cost_known:
        ctx.cost_usd = (ctx.cost_usd or Decimal(0)) + (child.cost_usd or Decimal(0))


def compose(stages: list[Stage], terminal: Handler) -> Handler:
    """Nest stages around the terminal handler: stages[0] runs first."""
    handler = terminal
    for stage in reversed(stages):
        handler = _bind(stage, handler)
    return handler


def _bind(stage: Stage, nxt: Handler) -> Handler:
    async def run(ctx: CallContext) -> Result:
        return await stage(ctx, nxt)

    return run
