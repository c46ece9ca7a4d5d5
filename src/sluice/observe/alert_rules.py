"""The alert rules: their config, and the small windowed aggregates each one keeps.

`AlertEngine` (`sluice.observe.alerts`) feeds every rule each `kind="call"` record with
`observe(record, cost)` — on the request path, so it is a few integer and float updates in a
ring of time buckets — and asks each rule `check(now, active)` at every evaluation. A rule
answers one `Reading` per label set it knows about: `()` for rules over all calls, one per
route or user for the others (always including the label sets in `active`, the ones firing
now, so they can be resolved with a value). The engine turns readings into episodes.

Windows slide. A rule's window is `SLOTS` buckets of `window_s / SLOTS` seconds; a record
counts in the bucket of its `ts` (when the call started), and at `now` the window holds the
`SLOTS` buckets ending with the one `now` falls in. Records older than the ring are ignored.

The rules, with their defaults:

- `cost_spike`: the cost of the last `window_s` (1 h) is over `factor` (2) x the hourly
  average of the previous `baseline_days` (7), scaled to the window. It waits for
  `min_history_h` (24) complete hours of baseline after the first call it saw, and ignores
  windows costing under `min_cost_usd` ($1). History is in memory: after a restart, the
  baseline starts again (so about 26 h pass before the rule can fire).
- `error_rate`: the share of calls answered 5xx is over `threshold` (5%) over `window_s`
  (5 min), with at least `min_calls` (20) calls in the window.
- `p99_latency`: the p99 of call latency (every call, errors included) is over
  `threshold_s` (10 s) over `window_s` (5 min), with at least `min_calls` (20) calls. The
  histogram has 2%-wide log buckets: the p99 is overestimated by at most 2%.
- `cache_hit_rate`: per route in `routes` (none: off), Sluice cache hits over cacheable
  calls (`cache_status` miss, exact or semantic) is under `threshold` (70%) over `window_s`
  (1 h), with at least `min_calls` (20) calls.
- `user_cost`: one user's cost is over `threshold_usd` ($10) over `window_s` (1 h); calls
  with no user or an unknown cost are skipped; at most `MAX_USERS_PER_SLOT` users per bucket.
- `daily_tokens`: input + output tokens of the current UTC day are over `threshold` (80%) of
  `daily_quota` (none: off); resolves when the day turns.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

# The rules' settings live in a leaf that `sluice.config` imports; re-exported here.
from sluice.observe.alert_config import DAY_S as DAY_S
from sluice.observe.alert_config import HOUR_S as HOUR_S
from sluice.observe.alert_config import CacheHitRateRule as CacheHitRateRule
from sluice.observe.alert_config import CostSpikeRule as CostSpikeRule
from sluice.observe.alert_config import DailyTokensRule as DailyTokensRule
from sluice.observe.alert_config import ErrorRateRule as ErrorRateRule
from sluice.observe.alert_config import LatencyRule as LatencyRule
from sluice.observe.alert_config import RulesConfig as RulesConfig
from sluice.observe.alert_config import UserCostRule as UserCostRule
from sluice.observe.records import CACHE_HITS, CallRecord

SLOTS = 60  # buckets per sliding window
MAX_USERS_PER_SLOT = 10_000  # user_cost: distinct users tracked per bucket (bounded memory)

Labels = tuple[tuple[str, str], ...]


# --- buckets ---------------------------------------------------------------------------

T = TypeVar("T")


class Ring(Generic[T]):
    """`size` buckets of `width` seconds; bucket `i` of time holds `ts` in
    `[i * width, (i + 1) * width)` and lives in position `i % size` until reused."""

    __slots__ = ("_new", "keys", "size", "vals", "width")

    def __init__(self, width: float, size: int, new: Callable[[], T]) -> None:
        self.width, self.size, self._new = width, size, new
        self.keys = [-1] * size
        self.vals: list[T] = [new() for _ in range(size)]

    def at(self, ts: float) -> int:
        """The position of `ts`'s bucket (emptied if it held an older one); -1 when `ts` is
        older than what the ring holds."""
        idx = int(ts // self.width)
        pos = idx % self.size
        key = self.keys[pos]
        if key != idx:
            if idx < key or idx < 0:
                return -1
            self.keys[pos] = idx
            self.vals[pos] = self._new()
        return pos

    def index(self, ts: float) -> int:
        return int(ts // self.width)

    def span(self, first: int, last: int) -> Iterator[T]:
        """The buckets with index in `[first, last]` that hold data."""
        for key, val in zip(self.keys, self.vals, strict=True):
            if first <= key <= last:
                yield val

    def window(self, now: float) -> Iterator[T]:
        cur = self.index(now)
        return self.span(cur - self.size + 1, cur)


def _pair() -> list[int]:
    return [0, 0]


# --- rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reading:
    value: float | None
    threshold: float | None
    firing: bool
    summary: str


class Rule(ABC):
    name: str
    window_s: float

    @abstractmethod
    def observe(self, record: CallRecord, cost: float | None) -> None: ...

    @abstractmethod
    def check(self, now: float, active: Collection[Labels]) -> dict[Labels, Reading]: ...


def span_text(seconds: float) -> str:
    if seconds >= HOUR_S and seconds % HOUR_S == 0:
        return f"{seconds / HOUR_S:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


class ErrorRate(Rule):
    name = "error_rate"

    def __init__(self, cfg: ErrorRateRule) -> None:
        self.cfg, self.window_s = cfg, cfg.window_s
        self._ring = Ring(cfg.window_s / SLOTS, SLOTS, _pair)

    def observe(self, record: CallRecord, cost: float | None) -> None:
        pos = self._ring.at(record.ts)
        if pos >= 0:
            counts = self._ring.vals[pos]
            counts[0] += 1
            if record.status >= 500:
                counts[1] += 1

    def check(self, now: float, active: Collection[Labels]) -> dict[Labels, Reading]:
        calls = errors = 0
        for c, e in self._ring.window(now):
            calls += c
            errors += e
        rate = errors / calls if calls else 0.0
        cfg = self.cfg
        firing = calls >= cfg.min_calls and rate > cfg.threshold
        summary = (
            f"5xx error rate {rate:.1%} ({errors} of {calls} calls) over "
            f"{span_text(cfg.window_s)}; threshold {cfg.threshold:.1%} "
            f"with at least {cfg.min_calls} calls"
        )
        return {(): Reading(rate, cfg.threshold, firing, summary)}


_GROWTH = 1.02  # latency histogram: each bucket 2% wider than the one before
_LOG_GROWTH = math.log(_GROWTH)


def latency_bin(ms: float) -> int:
    return int(math.log(ms) / _LOG_GROWTH) + 1 if ms > 1.0 else 0


def bin_upper_ms(b: int) -> float:
    return float(_GROWTH**b)


class Latency(Rule):
    name = "p99_latency"
    quantile = 0.99

    def __init__(self, cfg: LatencyRule) -> None:
        self.cfg, self.window_s = cfg, cfg.window_s
        self._ring: Ring[dict[int, int]] = Ring(cfg.window_s / SLOTS, SLOTS, dict)

    def observe(self, record: CallRecord, cost: float | None) -> None:
        pos = self._ring.at(record.ts)
        if pos >= 0:
            hist = self._ring.vals[pos]
            b = latency_bin(record.latency_ms)
            hist[b] = hist.get(b, 0) + 1

    def check(self, now: float, active: Collection[Labels]) -> dict[Labels, Reading]:
        merged: dict[int, int] = {}
        for hist in self._ring.window(now):
            for b, n in hist.items():
                merged[b] = merged.get(b, 0) + n
        calls = sum(merged.values())
        p99_s = 0.0
        if calls:
            rank, seen = math.ceil(self.quantile * calls), 0
            for b in sorted(merged):
                seen += merged[b]
                if seen >= rank:
                    p99_s = bin_upper_ms(b) / 1000
                    break
        cfg = self.cfg
        firing = calls >= cfg.min_calls and p99_s > cfg.threshold_s
        summary = (
            f"p99 latency {p99_s:.2f}s over {calls} calls in {span_text(cfg.window_s)}; "
            f"threshold {cfg.threshold_s:g}s with at least {cfg.min_calls} calls"
        )
        return {(): Reading(p99_s, cfg.threshold_s, firing, summary)}


_CACHEABLE = frozenset({"miss", *CACHE_HITS})


class CacheHitRate(Rule):
    name = "cache_hit_rate"

    def __init__(self, cfg: CacheHitRateRule) -> None:
        self.cfg, self.window_s = cfg, cfg.window_s
        self._routes = frozenset(cfg.routes)
        self._ring: Ring[dict[str, list[int]]] = Ring(cfg.window_s / SLOTS, SLOTS, dict)

    def observe(self, record: CallRecord, cost: float | None) -> None:
        route = record.route
        if route is None or route not in self._routes or record.cache_status not in _CACHEABLE:
            return
        pos = self._ring.at(record.ts)
        if pos >= 0:
            by_route = self._ring.vals[pos]
            counts = by_route.get(route)
            if counts is None:
                counts = by_route[route] = [0, 0]
            counts[0] += 1
            if record.cache_status in CACHE_HITS:
                counts[1] += 1

    def check(self, now: float, active: Collection[Labels]) -> dict[Labels, Reading]:
        totals: dict[str, list[int]] = {}
        for by_route in self._ring.window(now):
            for route, (calls, hits) in by_route.items():
                acc = totals.setdefault(route, [0, 0])
                acc[0] += calls
                acc[1] += hits
        cfg, out = self.cfg, dict[Labels, Reading]()
        for labels in active:
            totals.setdefault(dict(labels)["route"], [0, 0])
        for route, (calls, hits) in totals.items():
            rate = hits / calls if calls else 0.0
            firing = calls >= cfg.min_calls and rate < cfg.threshold
            summary = (
                f"cache hit rate {rate:.1%} ({hits} of {calls} calls) on route {route} over "
                f"{span_text(cfg.window_s)}; threshold {cfg.threshold:.1%} "
                f"with at least {cfg.min_calls} calls"
            )
            out[(("route", route),)] = Reading(rate, cfg.threshold, firing, summary)
        return out


class UserCost(Rule):
    name = "user_cost"

    def __init__(self, cfg: UserCostRule) -> None:
        self.cfg, self.window_s = cfg, cfg.window_s
        self._ring: Ring[dict[str, float]] = Ring(cfg.window_s / SLOTS, SLOTS, dict)
        self.untracked = 0  # calls not counted because a bucket was full of users

    def observe(self, record: CallRecord, cost: float | None) -> None:
        user = record.user_id
        if not cost or not user:
            return
        pos = self._ring.at(record.ts)
        if pos >= 0:
            users = self._ring.vals[pos]
            if user in users:
                users[user] += cost
            elif len(users) < MAX_USERS_PER_SLOT:
                users[user] = cost
            else:
                self.untracked += 1

    def check(self, now: float, active: Collection[Labels]) -> dict[Labels, Reading]:
        totals: dict[str, float] = {}
        for users in self._ring.window(now):
            for user, cost in users.items():
                totals[user] = totals.get(user, 0.0) + cost
        cfg, out = self.cfg, dict[Labels, Reading]()
        watched = {dict(labels)["user_id"] for labels in active}
        for user, cost in totals.items():
            if cost > cfg.threshold_usd or user in watched:
                out[(("user_id", user),)] = self._reading(user, cost)
        for user in watched - totals.keys():
            out[(("user_id", user),)] = self._reading(user, 0.0)
        return out

    def _reading(self, user: str, cost: float) -> Reading:
        cfg = self.cfg
        summary = (
            f"user {user} spent ${cost:.2f} over {span_text(cfg.window_s)}; "
            f"threshold ${cfg.threshold_usd:.2f}"
        )
        return Reading(cost, cfg.threshold_usd, cost > cfg.threshold_usd, summary)


class CostSpike(Rule):
    name = "cost_spike"

    def __init__(self, cfg: CostSpikeRule) -> None:
        self.cfg, self.window_s = cfg, cfg.window_s
        self._current = Ring(cfg.window_s / SLOTS, SLOTS, float)
        # The baseline hours, the hours the window touches, and one spare.
        size = cfg.baseline_days * 24 + math.ceil(cfg.window_s / HOUR_S) + 2
        self._hours = Ring(HOUR_S, size, float)
        self.first_ts: float | None = None  # history starts with the first call seen

    def observe(self, record: CallRecord, cost: float | None) -> None:
        ts = record.ts
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if cost:
            pos = self._current.at(ts)
            if pos >= 0:
                self._current.vals[pos] += cost
            pos = self._hours.at(ts)
            if pos >= 0:
                self._hours.vals[pos] += cost

    def check(self, now: float, active: Collection[Labels]) -> dict[Labels, Reading]:
        cfg = self.cfg
        current = sum(self._current.window(now))
        # Complete hours before the first hour the window touches, since history began.
        last = self._hours.index(now - cfg.window_s) - 1
        first = last - cfg.baseline_days * 24 + 1
        if self.first_ts is not None:
            first = max(first, self._hours.index(self.first_ts) + 1)
        hours = last - first + 1
        window = span_text(cfg.window_s)
        if self.first_ts is None or hours < cfg.min_history_h:
            summary = (
                f"cost ${current:.2f} over {window}; the baseline needs "
                f"{cfg.min_history_h} complete hours of history, has {max(hours, 0)}"
            )
            return {(): Reading(current, None, False, summary)}
        hourly = sum(self._hours.span(first, last)) / hours
        threshold = cfg.factor * hourly * cfg.window_s / HOUR_S
        firing = current > threshold and current >= cfg.min_cost_usd
        summary = (
            f"cost ${current:.2f} over {window} against a baseline of ${hourly:.2f}/h over "
            f"{hours}h; threshold ${threshold:.2f} ({cfg.factor:g}x), "
            f"at least ${cfg.min_cost_usd:.2f}"
        )
        return {(): Reading(current, threshold, firing, summary)}


class DailyTokens(Rule):
    name = "daily_tokens"
    window_s = DAY_S

    def __init__(self, cfg: DailyTokensRule, quota: int) -> None:
        self.cfg, self.quota = cfg, quota
        self._day = -1
        self._tokens = 0

    def observe(self, record: CallRecord, cost: float | None) -> None:
        day = int(record.ts // DAY_S)
        if day > self._day:
            self._day, self._tokens = day, 0
        if day == self._day:
            self._tokens += record.input_tokens + record.output_tokens

    def check(self, now: float, active: Collection[Labels]) -> dict[Labels, Reading]:
        tokens = self._tokens if self._day == int(now // DAY_S) else 0
        threshold = self.cfg.threshold * self.quota
        summary = (
            f"{tokens} tokens today (UTC), {tokens / self.quota:.1%} of the daily quota of "
            f"{self.quota}; threshold {self.cfg.threshold:.0%}"
        )
        return {(): Reading(float(tokens), threshold, tokens > threshold, summary)}


def build_rules(cfg: RulesConfig) -> list[Rule]:
    """The enabled rules; `cache_hit_rate` without routes and `daily_tokens` without a
    quota are off."""
    rules: list[Rule] = []
    if cfg.cost_spike.enabled:
        rules.append(CostSpike(cfg.cost_spike))
    if cfg.error_rate.enabled:
        rules.append(ErrorRate(cfg.error_rate))
    if cfg.p99_latency.enabled:
        rules.append(Latency(cfg.p99_latency))
    if cfg.cache_hit_rate.enabled and cfg.cache_hit_rate.routes:
        rules.append(CacheHitRate(cfg.cache_hit_rate))
    if cfg.user_cost.enabled:
        rules.append(UserCost(cfg.user_cost))
    quota = cfg.daily_tokens.daily_quota
    if cfg.daily_tokens.enabled and quota is not None:
        rules.append(DailyTokens(cfg.daily_tokens, quota))
    return rules
