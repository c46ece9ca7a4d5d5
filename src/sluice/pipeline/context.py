"""What flows through the pipeline, and the stage signature."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal

from sluice.observe.tracing import Tracing
from sluice.providers.base import Deployment
from sluice.types import ChatRequest, ChatResponse, EventStream, Usage

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
    request: ChatRequest
    started: float = field(default_factory=time.perf_counter)
    plan: list[Deployment] = field(default_factory=list)
    deployment: Deployment | None = None
    attempts: int = 0  # upstream calls made for this request
    fallback: bool = False  # served (or tried) by a model other than the one asked for
    degraded: bool = False  # the plan failed and the configured degrade answer was given
    skip_models: int = 0  # start the plan at this model (structured output escalates)
    cache_status: str | None = None  # "miss" | "exact" | "semantic" | "stale" | "bypass"
    cache_similarity: float | None = None  # cosine of a semantic cache hit
    cache_saved_usd: Decimal | None = None  # a hit: what the answer cost the first time
    response_headers: dict[str, str] = field(default_factory=dict)
    route: str | None = None  # the public route name the caller asked for (routing on)
    route_decision: str | None = None  # "strategy: reason", also sent as x-sluice-route-decision
    route_reference: str | None = None  # the route's strong model, for "saved by routing"
    over_soft_budget: bool = False  # set by budgets: routes pick their cheapest target
    # Filled by the settle stage after every upstream answer (streams: when they end).
    usage: Usage = field(default_factory=Usage)  # summed over repairs and escalations
    cost_usd: Decimal | None = None  # None while any part of it has no known price
    cost_known: bool = True
    last_response: ChatResponse | None = None  # the last settled answer (streams: collected)
    attempt_log: list[Attempt] = field(default_factory=list)
    # Called with each settled upstream answer's cost (None: unknown price).
    on_settled: list[Callable[[Decimal | None], None]] = field(default_factory=list)


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


def traced(stage: Stage, tracing: Tracing) -> Stage:
    """The stage inside a span named after it (used only when tracing is on)."""
    name = f"sluice.stage.{type(stage).__name__.removesuffix('Stage').lower()}"

    async def run(ctx: CallContext, nxt: Handler) -> Result:
        with tracing.span(name):
            return await stage(ctx, nxt)

    return run


def _bind(stage: Stage, nxt: Handler) -> Handler:
    async def run(ctx: CallContext) -> Result:
        return await stage(ctx, nxt)

    return run
