"""The same counters in Redis, so every replica shares them exactly.

Each operation is one Lua script, which Redis runs atomically: no read-modify-write race
between replicas. `admit` prunes, checks every scope and commits only if all pass.

Layout under the prefix, per rate key `R`: `R:z` (sorted set ticket → admission time, ms),
`R:h` (hash ticket → cost), `R:t` (sum of costs in the window). Per budget key `B`: `B:s`
(settled spend), `B:r` (sorted set ticket → reservation deadline, ms), `B:a` (hash ticket →
amount), `B:rt` (sum of live reservations). Expired reservations are pruned inside the
scripts; every key expires on its own (window + 1 s, or the budget period's end + 1 day).
The scripts take their keys as arguments, which is fine for one Redis server or a
replicated one (not a Redis Cluster).

Reservations are leases (`lease_s`): a reservation's deadline is `lease_s` ahead, and the
replica holding it moves the deadline on every `lease_s / 3` while the call runs (one
`_RENEW` script for all of its tickets), for at most `reservation_ttl_s` in all. A replica
killed mid-call stops renewing, so its reservations are released within `lease_s` (they
used to be held for the whole `reservation_ttl_s`, 900 s by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from sluice.governance.counters import (
    WINDOW_S,
    Admission,
    BudgetCheck,
    BudgetState,
    CounterBackendError,
    RateCheck,
    RateState,
    Settlement,
)
from sluice.state import redis as redis_pools

log = logging.getLogger("sluice.limits")

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

_COMMON = """
local function int(x) return string.format('%d', x) end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function sum(values)
  local s = 0
  for _, v in ipairs(values) do if v then s = s + tonumber(v) end end
  return s
end
local function prune_rate(k, now, window)
  while true do
    local old = redis.call('ZRANGEBYSCORE', k .. ':z', '-inf', now - window, 'LIMIT', 0, 500)
    if #old == 0 then break end
    local freed = sum(redis.call('HMGET', k .. ':h', unpack(old)))
    redis.call('ZREM', k .. ':z', unpack(old))
    redis.call('HDEL', k .. ':h', unpack(old))
    redis.call('DECRBY', k .. ':t', int(freed))
  end
  return tonumber(redis.call('GET', k .. ':t') or '0')
end
local function rate_reset(k, now, window)
  local last = redis.call('ZRANGE', k .. ':z', -1, -1, 'WITHSCORES')
  if #last == 0 then return 0 end
  return math.max(tonumber(last[2]) + window - now, 0)
end
local function prune_budget(k, now)
  while true do
    local old = redis.call('ZRANGEBYSCORE', k .. ':r', '-inf', now, 'LIMIT', 0, 500)
    if #old == 0 then break end
    local freed = sum(redis.call('HMGET', k .. ':a', unpack(old)))
    redis.call('ZREM', k .. ':r', unpack(old))
    redis.call('HDEL', k .. ':a', unpack(old))
    redis.call('DECRBY', k .. ':rt', int(freed))
  end
  local spent = tonumber(redis.call('GET', k .. ':s') or '0')
  return spent, tonumber(redis.call('GET', k .. ':rt') or '0')
end
local function expire_budget(k, resets_at_ms)
  if resets_at_ms and resets_at_ms > 0 then
    local at = resets_at_ms + 86400000
    for _, s in ipairs({':s', ':r', ':a', ':rt'}) do redis.call('PEXPIREAT', k .. s, int(at)) end
  end
end
"""

# ARGV: ticket, reservation ttl ms, window ms, JSON {r: [[key, limit, cost]], b: [[key, limit,
# amount, hard, resets_at_ms]]}. Returns JSON {ok, fr, fb, retry, r: [[used, reset]], b: [...]}.
_ADMIT = (
    _COMMON
    + """
local now = now_ms()
local ticket, ttl, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local spec = cjson.decode(ARGV[4])
local out = {ok = 1, fr = -1, fb = -1, retry = 0, r = {}, b = {}}
local used, spent, reserved = {}, {}, {}
for i, c in ipairs(spec.r) do used[i] = prune_rate(c[1], now, window) end
for i, c in ipairs(spec.b) do spent[i], reserved[i] = prune_budget(c[1], now) end
for i, c in ipairs(spec.r) do
  if used[i] + c[3] > c[2] then
    out.ok, out.fr = 0, i - 1
    out.retry = window
    if c[3] <= c[2] then
      local need, freed = used[i] + c[3] - c[2], 0
      local rows = redis.call('ZRANGE', c[1] .. ':z', 0, -1, 'WITHSCORES')
      for j = 1, #rows, 2 do
        freed = freed + tonumber(redis.call('HGET', c[1] .. ':h', rows[j]) or '0')
        if freed >= need then
          out.retry = math.max(tonumber(rows[j + 1]) + window - now, 0)
          break
        end
      end
    end
    break
  end
end
if out.ok == 1 then
  for i, c in ipairs(spec.b) do
    if c[4] == 1 and spent[i] + reserved[i] + c[3] > c[2] then out.ok, out.fb = 0, i - 1; break end
  end
end
if out.ok == 1 then
  for i, c in ipairs(spec.r) do
    redis.call('ZADD', c[1] .. ':z', int(now), ticket)
    redis.call('HSET', c[1] .. ':h', ticket, int(c[3]))
    used[i] = redis.call('INCRBY', c[1] .. ':t', int(c[3]))
    for _, s in ipairs({':z', ':h', ':t'}) do
      redis.call('PEXPIRE', c[1] .. s, int(window + 1000))
    end
  end
  for i, c in ipairs(spec.b) do
    redis.call('ZADD', c[1] .. ':r', int(now + ttl), ticket)
    redis.call('HSET', c[1] .. ':a', ticket, int(c[3]))
    reserved[i] = redis.call('INCRBY', c[1] .. ':rt', int(c[3]))
    expire_budget(c[1], c[5])
  end
end
for i, c in ipairs(spec.r) do out.r[i] = {used[i], rate_reset(c[1], now, window)} end
for i, c in ipairs(spec.b) do out.b[i] = {spent[i], reserved[i]} end
return cjson.encode(out)
"""
)

# ARGV: ticket, JSON {r: [[key, cost]], b: [[key, amount, resets_at_ms]]}. Returns JSON spent.
_SETTLE = (
    _COMMON
    + """
local ticket = ARGV[1]
local spec = cjson.decode(ARGV[2])
for _, c in ipairs(spec.r) do
  local old = redis.call('HGET', c[1] .. ':h', ticket)
  if old then
    redis.call('HSET', c[1] .. ':h', ticket, int(c[2]))
    redis.call('INCRBY', c[1] .. ':t', int(c[2] - tonumber(old)))
  end
end
local spent = {}
for i, c in ipairs(spec.b) do
  local held = redis.call('HGET', c[1] .. ':a', ticket)
  if held then
    redis.call('HDEL', c[1] .. ':a', ticket)
    redis.call('ZREM', c[1] .. ':r', ticket)
    redis.call('DECRBY', c[1] .. ':rt', held)
  end
  spent[i] = redis.call('INCRBY', c[1] .. ':s', int(c[2]))
  expire_budget(c[1], c[3])
end
return cjson.encode(spent)
"""
)

# ARGV: lease ms, JSON [[budget key, ticket], ...]: move live reservations' deadlines on.
_RENEW = (
    _COMMON
    + """
local deadline = now_ms() + tonumber(ARGV[1])
for _, c in ipairs(cjson.decode(ARGV[2])) do
  redis.call('ZADD', c[1] .. ':r', 'XX', int(deadline), c[2])
end
return 1
"""
)

# ARGV: window ms, JSON {r: [key], b: [key]}. Returns JSON {r: [[used, reset]], b: [[s, r]]}.
_READ = (
    _COMMON
    + """
local now = now_ms()
local window = tonumber(ARGV[1])
local spec = cjson.decode(ARGV[2])
local out = {r = {}, b = {}}
for i, k in ipairs(spec.r) do
  out.r[i] = {prune_rate(k, now, window), rate_reset(k, now, window)}
end
for i, k in ipairs(spec.b) do local s, r = prune_budget(k, now); out.b[i] = {s, r} end
return cjson.encode(out)
"""
)

_WINDOW_MS = int(WINDOW_S * 1000)


def _ms(epoch_s: float | None) -> int:
    return int(epoch_s * 1000) if epoch_s is not None else 0


def _list(value: Any) -> list[Any]:
    # cjson encodes an empty Lua table as {}; an empty list is what was meant.
    return value if isinstance(value, list) else []


class RedisCounters:
    """Counters in Redis; times come from the Redis server's clock (one clock for all
    replicas). Any Redis failure surfaces as `CounterBackendError`."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "sluice:gov:",
        *,
        timeout_s: float = 0.25,
        client: Redis | None = None,
        lease_s: float | None = None,
    ) -> None:
        # The process's shared pool for `url` (sluice.state.redis): calls beyond its size wait
        # for a free connection instead of failing; `_run` bounds each whole call.
        self._shared = client is None
        if client is None:
            client = redis_pools.client(url)
        self._client = client
        self.prefix = prefix
        self._timeout_s = timeout_s
        self._admit: AsyncScript = client.register_script(_ADMIT)
        self._settle: AsyncScript = client.register_script(_SETTLE)
        self._read: AsyncScript = client.register_script(_READ)
        self._renew: AsyncScript = client.register_script(_RENEW)
        self._lease_s = lease_s
        # ticket -> (renew until, monotonic; the budget keys it holds a reservation in)
        self._held: dict[str, tuple[float, list[str]]] = {}
        self._renewer: asyncio.Task[None] | None = None

    async def admit(
        self,
        ticket: str,
        rates: Sequence[RateCheck],
        budgets: Sequence[BudgetCheck],
        reservation_ttl_s: float,
    ) -> Admission:
        spec = {
            "r": [[self.prefix + c.key, c.limit, c.cost] for c in rates],
            "b": [
                [self.prefix + c.key, c.limit, c.amount, int(c.hard), _ms(c.resets_at)]
                for c in budgets
            ],
        }
        lease = (
            reservation_ttl_s if self._lease_s is None else min(self._lease_s, reservation_ttl_s)
        )
        args = [ticket, int(lease * 1000), _WINDOW_MS, orjson.dumps(spec)]
        out = orjson.loads(await self._run(self._admit, args))
        if out["ok"] == 1 and budgets and lease < reservation_ttl_s:
            until = time.monotonic() + reservation_ttl_s
            self._held[ticket] = (until, [self.prefix + c.key for c in budgets])
            if self._renewer is None or self._renewer.done():
                loop = asyncio.get_running_loop()
                self._renewer = loop.create_task(self._renew_forever(lease))
        result = Admission(
            admitted=out["ok"] == 1,
            rates=[RateState(int(u), r / 1000) for u, r in _list(out["r"])],
            budgets=[BudgetState(int(s), int(r)) for s, r in _list(out["b"])],
            retry_after_s=out["retry"] / 1000,
        )
        result.failed_rate = out["fr"] if out["fr"] >= 0 else None
        result.failed_budget = out["fb"] if out["fb"] >= 0 else None
        return result

    async def settle(self, ticket: str, settlement: Settlement) -> list[int]:
        self._held.pop(ticket, None)
        spec = {
            "r": [[self.prefix + k, cost] for k, cost in settlement.rate_costs],
            "b": [[self.prefix + k, amt, _ms(at)] for k, amt, at in settlement.budget_amounts],
        }
        out = orjson.loads(await self._run(self._settle, [ticket, orjson.dumps(spec)]))
        return [int(s) for s in _list(out)]

    async def read(self, rates: Sequence[RateCheck], budgets: Sequence[BudgetCheck]) -> Admission:
        spec = {
            "r": [self.prefix + c.key for c in rates],
            "b": [self.prefix + c.key for c in budgets],
        }
        out = orjson.loads(await self._run(self._read, [_WINDOW_MS, orjson.dumps(spec)]))
        return Admission(
            admitted=True,
            rates=[RateState(int(u), r / 1000) for u, r in _list(out["r"])],
            budgets=[BudgetState(int(s), int(r)) for s, r in _list(out["b"])],
        )

    async def clear(self) -> int:
        """Delete every key under the prefix (tests); returns how many."""
        count = 0
        async for key in self._client.scan_iter(match=self.prefix + "*", count=500):
            count += await self._client.delete(key)
        return count

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._shared:
            await redis_pools.release(self._client)
        else:
            await self._client.aclose()

    async def _renew_forever(self, lease_s: float) -> None:
        """Move the deadlines of this replica's live reservations on, every lease/3."""
        while True:
            await asyncio.sleep(lease_s / 3)
            now = time.monotonic()
            for ticket in [t for t, (until, _) in self._held.items() if until <= now]:
                del self._held[ticket]  # never settled: let it lapse like before
            pairs = [[k, t] for t, (_, keys) in self._held.items() for k in keys]
            if not pairs:
                continue
            try:
                await self._run(self._renew, [int(lease_s * 1000), orjson.dumps(pairs)])
            except CounterBackendError as exc:
                log.warning("reservation leases not renewed: %s", exc)

    async def _run(self, script: AsyncScript, args: list[Any]) -> bytes:
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(max(self._timeout_s * 8, 2.0)):  # whole call, queue incl.
                raw: bytes = await script(args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise CounterBackendError(f"{type(exc).__name__}: {exc}") from exc
        return raw
