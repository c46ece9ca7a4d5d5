"""How the plan executor judges outcomes and words the errors of a plan that failed.

Split out of the executor: which failures are the caller's (never counted against a
deployment), and the 503/429/400 a caller gets when no deployment could serve it.
"""

from __future__ import annotations

import math
import time

from sluice.errors import (
    InvalidRequestError,
    RateLimitError,
    ServiceUnavailableError,
    SluiceError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
)
from sluice.providers.upstream_codes import CONTEXT_LENGTH_EXCEEDED, says_context_exceeded
from sluice.reliability.state import DeploymentState

_CALLER_STATUSES = frozenset({400, 413, 422})


def is_context_overflow(err: SluiceError) -> bool:
    if not isinstance(err, UpstreamStatusError) or err.upstream_status not in (400, 413):
        return False
    return err.code == CONTEXT_LENGTH_EXCEEDED or says_context_exceeded(err.message)


def is_caller_error(err: SluiceError) -> bool:
    """The request itself is wrong: no other deployment would answer differently."""
    if isinstance(err, UpstreamStatusError):
        return err.upstream_status in _CALLER_STATUSES and not is_context_overflow(err)
    return not isinstance(err, UpstreamError)


def context_error(model: str, need: int, states: list[DeploymentState]) -> SluiceError:
    largest = max((s.dep.context_window or 0) for s in states)
    return InvalidRequestError(
        f"the request needs about {need} tokens (prompt + max_tokens); the largest context "
        f"window serving {model!r} is {largest}",
        param="messages",
        code="context_length_exceeded",
    )


def is_caller_deadline(err: SluiceError, deadline: float | None) -> bool:
    """A timeout because the caller's `x-sluice-timeout-ms` ran out: not the deployment's
    fault, never counted against it (one tenant's tight deadlines must not eject it)."""
    if deadline is None or not isinstance(err, UpstreamTimeoutError):
        return False
    return time.monotonic() >= deadline - 0.005


def all_open_error(model: str, states: list[DeploymentState]) -> SluiceError:
    """503 with `retry-after`: when the first of them takes calls again (its breaker's
    remaining open time, or the provider's requested rest)."""
    now = time.monotonic()
    wait = min(
        (max(s.breaker.remaining_open_s(), s.cooldown_until - now, 1.0) for s in states),
        default=1.0,
    )
    return ServiceUnavailableError(
        f"every deployment serving {model!r} is unavailable (circuit open)",
        code="deployments_unavailable",
        headers={"retry-after": str(max(1, math.ceil(wait)))},
    )


def resting_error(model: str, states: list[DeploymentState], now: float) -> SluiceError:
    wait = min(s.cooldown_until for s in states) - now
    return RateLimitError(
        f"every deployment serving {model!r} is rate-limited by its provider; retry later",
        code="upstream_rate_limited",
        headers={"retry-after": str(max(1, math.ceil(wait)))},
    )


def final_error(failures: list[SluiceError]) -> SluiceError:
    """What the caller sees when the whole plan failed: the last upstream failure (a 504
    when it was a timeout), else why no deployment could be tried."""
    upstream = [f for f in failures if isinstance(f, UpstreamError)]
    return upstream[-1] if upstream else failures[-1]
