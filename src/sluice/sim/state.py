"""Per-app mutable state: counters, rate-limit windows, prompt-cache memory, faults.

One `SimState` lives in each app (no module globals), so tests can run several
simulators in one process without cross-talk. Everything here is O(1) per request;
memory is bounded (LRU prompt cache, capped model and key tables).
"""

from __future__ import annotations

import math
import random
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sluice.sim.config import FAULT_KINDS, SimConfig, SimModel

WINDOW_S = 60.0
MAX_TRACKED = 1000  # distinct model names / invalid-json keys remembered


class PromptCache:
    """Prompt-prefix hashes seen recently: an LRU with a TTL per entry."""

    __slots__ = ("_entries", "_max")

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: OrderedDict[bytes, tuple[float, float]] = OrderedDict()
        self._max = max_entries

    def lookup(self, key: bytes, now: float) -> bool:
        """True when `key` was stored and has not expired; a hit refreshes its TTL."""
        entry = self._entries.get(key)
        if entry is None:
            return False
        expires, ttl = entry
        if expires < now:
            del self._entries[key]
            return False
        self._entries[key] = (now + ttl, ttl)
        self._entries.move_to_end(key)
        return True

    def store(self, key: bytes, ttl: float, now: float) -> None:
        self._entries[key] = (now + ttl, ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(slots=True)
class LimitInfo:
    """Where a model stands in its current 60 s window (0 limit = not limited)."""

    limit_requests: int
    remaining_requests: int
    limit_tokens: int
    remaining_tokens: int
    reset_s: float
    exceeded: str | None = None  # "requests" or "tokens" when the request is refused

    @property
    def retry_after_s(self) -> int:
        return max(1, math.ceil(self.reset_s))


@dataclass(slots=True)
class _Window:
    start: float
    requests: int = 0
    tokens: int = 0


class RateLimiter:
    """Fixed 60 s windows per model, opened by the first request after the last ended."""

    __slots__ = ("_windows",)

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}

    def check(self, model: SimModel, tokens: int, now: float) -> LimitInfo:
        """Count the request (and its tokens) if it fits; say so either way."""
        window = self._windows.get(model.name)
        if window is None or now - window.start >= WINDOW_S:
            window = self._windows[model.name] = _Window(now)
        exceeded = None
        if model.rpm_limit and window.requests + 1 > model.rpm_limit:
            exceeded = "requests"
        elif model.tpm_limit and window.tokens + tokens > model.tpm_limit:
            exceeded = "tokens"
        if exceeded is None:
            window.requests += 1
            window.tokens += tokens
        return LimitInfo(
            model.rpm_limit,
            max(0, model.rpm_limit - window.requests),
            model.tpm_limit,
            max(0, model.tpm_limit - window.tokens),
            window.start + WINDOW_S - now,
            exceeded,
        )

    def clear(self) -> None:
        self._windows.clear()


def go_duration(seconds: float) -> str:
    """Seconds as OpenAI writes reset times: "120ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest, 3):g}s"


def openai_limit_headers(info: LimitInfo) -> dict[str, str]:
    headers: dict[str, str] = {}
    reset = go_duration(info.reset_s)
    if info.limit_requests:
        headers["x-ratelimit-limit-requests"] = str(info.limit_requests)
        headers["x-ratelimit-remaining-requests"] = str(info.remaining_requests)
        headers["x-ratelimit-reset-requests"] = reset
    if info.limit_tokens:
        headers["x-ratelimit-limit-tokens"] = str(info.limit_tokens)
        headers["x-ratelimit-remaining-tokens"] = str(info.remaining_tokens)
        headers["x-ratelimit-reset-tokens"] = reset
    return headers


def anthropic_limit_headers(info: LimitInfo) -> dict[str, str]:
    headers: dict[str, str] = {}
    at = datetime.fromtimestamp(math.ceil(time.time() + info.reset_s), UTC)
    reset = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if info.limit_requests:
        headers["anthropic-ratelimit-requests-limit"] = str(info.limit_requests)
        headers["anthropic-ratelimit-requests-remaining"] = str(info.remaining_requests)
        headers["anthropic-ratelimit-requests-reset"] = reset
    if info.limit_tokens:
        for kind in ("tokens", "input-tokens"):
            headers[f"anthropic-ratelimit-{kind}-limit"] = str(info.limit_tokens)
            headers[f"anthropic-ratelimit-{kind}-remaining"] = str(info.remaining_tokens)
            headers[f"anthropic-ratelimit-{kind}-reset"] = reset
    return headers


class ModelStats:
    __slots__ = ("cache_read_tokens", "cache_write_tokens", "input_tokens", "output_tokens",
                 "requests")  # fmt: skip

    def __init__(self) -> None:
        self.requests = 0
        self.input_tokens = 0  # all prompt tokens, cached ones included
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_write_tokens = 0

    def to_json(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
        }


class Stats:
    """Counters served at GET /sim/stats."""

    def __init__(self) -> None:
        self.open_streams = 0  # a gauge: never reset, streams still being written
        self.in_flight = 0  # a gauge: chat requests being handled right now
        self.last_traceparent: str | None = None  # W3C trace context of the last request
        self.last_prompt_text: str | None = None  # the last request's last text (guardrails)
        self.requests_cancelled = 0  # chat requests whose client left before the answer
        self.requests_total = 0
        self.by_model: dict[str, ModelStats] = {}
        self.streams_cancelled = 0
        self.faults_injected: dict[str, int] = {}

    def reset(self) -> None:
        self.requests_total = 0
        self.by_model = {}
        self.streams_cancelled = 0
        self.requests_cancelled = 0
        self.faults_injected = {}

    def model(self, name: str) -> ModelStats:
        found = self.by_model.get(name)
        if found is None:
            if len(self.by_model) >= MAX_TRACKED:
                name = "(other)"
            found = self.by_model.setdefault(name, ModelStats())
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "by_model": {name: s.to_json() for name, s in self.by_model.items()},
            "open_streams": self.open_streams,
            "in_flight": self.in_flight,
            "last_traceparent": self.last_traceparent,
            "last_prompt_text": self.last_prompt_text,
            "requests_cancelled": self.requests_cancelled,
            "streams_cancelled": self.streams_cancelled,
            "faults_injected": dict(self.faults_injected),
        }


class SimState:
    """Everything one simulator app remembers between requests."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.stats = Stats()
        self.limiter = RateLimiter()
        self.openai_cache = PromptCache()
        self.anthropic_cache = PromptCache()
        self.invalid_json_calls: dict[str, int] = {}
        self.fault_rng = random.Random(config.seed)
        self._models: dict[str, SimModel] = dict(config.models)
        self.model_names = list(config.models)

    def model(self, name: str) -> SimModel:
        """The configured model, or the default template renamed (memoized, bounded)."""
        found = self._models.get(name)
        if found is None:
            found = self.config.default_model.model_copy(update={"name": name})
            if len(self._models) < MAX_TRACKED:
                self._models[name] = found
        return found

    def pick_fault(self, header: str | None) -> str | None:
        """The fault for this request: the first kind named in `x-sim-fault`, else by rate."""
        if header:
            kind = header.split(",", 1)[0].strip().lower()
            return kind if kind in FAULT_KINDS else None
        config = self.config
        if config.fault_rate > 0 and config.faults and self.fault_rng.random() < config.fault_rate:
            return self.fault_rng.choice(config.faults)
        return None

    def note_fault(self, kind: str) -> None:
        self.stats.faults_injected[kind] = self.stats.faults_injected.get(kind, 0) + 1

    def invalid_json_due(self, key: str, first_n: int) -> bool:
        """True for the first `first_n` calls carrying `key` (then valid JSON follows)."""
        calls = self.invalid_json_calls.get(key, 0) + 1
        if len(self.invalid_json_calls) >= MAX_TRACKED and key not in self.invalid_json_calls:
            self.invalid_json_calls.clear()
        self.invalid_json_calls[key] = calls
        return calls <= first_n

    def reset(self) -> None:
        """Zero counters and forget caches, windows and invalid-JSON keys."""
        self.stats.reset()
        self.limiter.clear()
        self.openai_cache.clear()
        self.anthropic_cache.clear()
        self.invalid_json_calls.clear()
        self.fault_rng = random.Random(self.config.seed)
