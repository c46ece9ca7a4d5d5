"""Parse provider rate-limit headers into `RateLimitInfo`.

OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` with resets like `1s`,
`6m0s`, `20ms`. Anthropic: `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`
with RFC 3339 reset times. Both: `retry-after` in seconds (or an HTTP date), and
`retry-after-ms`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime

from sluice.types import RateLimitInfo

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """`6m0s` → 360.0; `20ms` → 0.02; a bare number is seconds."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def _seconds_until(text: str, now: float) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return parse_duration(text)
    return max(moment.timestamp() - now, 0.0)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - (now if now is not None else time.time()), 0.0)


def parse_ratelimit(headers: Mapping[str, str], now: float | None = None) -> RateLimitInfo | None:
    """None when the upstream sent no rate-limit headers at all (the common fast path)."""
    now = time.time() if now is None else now
    get = headers.get
    if get("x-ratelimit-limit-requests") is not None or get("x-ratelimit-limit-tokens"):
        reset_r, reset_t = get("x-ratelimit-reset-requests"), get("x-ratelimit-reset-tokens")
        return RateLimitInfo(
            limit_requests=_int(get("x-ratelimit-limit-requests")),
            remaining_requests=_int(get("x-ratelimit-remaining-requests")),
            reset_requests_s=parse_duration(reset_r) if reset_r else None,
            limit_tokens=_int(get("x-ratelimit-limit-tokens")),
            remaining_tokens=_int(get("x-ratelimit-remaining-tokens")),
            reset_tokens_s=parse_duration(reset_t) if reset_t else None,
            retry_after_s=parse_retry_after(headers, now),
        )
    if get("anthropic-ratelimit-requests-limit") is not None or get(
        "anthropic-ratelimit-tokens-limit"
    ):
        reset_r = get("anthropic-ratelimit-requests-reset")
        reset_t = get("anthropic-ratelimit-tokens-reset")
        return RateLimitInfo(
            limit_requests=_int(get("anthropic-ratelimit-requests-limit")),
            remaining_requests=_int(get("anthropic-ratelimit-requests-remaining")),
            reset_requests_s=_seconds_until(reset_r, now) if reset_r else None,
            limit_tokens=_int(get("anthropic-ratelimit-tokens-limit")),
            remaining_tokens=_int(get("anthropic-ratelimit-tokens-remaining")),
            reset_tokens_s=_seconds_until(reset_t, now) if reset_t else None,
            retry_after_s=parse_retry_after(headers, now),
        )
    retry = parse_retry_after(headers, now)
    return RateLimitInfo(retry_after_s=retry) if retry is not None else None
