"""Counters for rate limits and budgets: what an admission asks, and the in-process backend.

Rate limits are **sliding logs**: every admitted call is an entry (time, cost) kept for one
window (60 s); a call is admitted when the costs inside the last window plus its own fit the
limit. There is no window edge to burst across: at any instant the last 60 s hold at most
`limit`. Token costs can be corrected after the call (`settle`), which is how TPM moves from
the reservation (estimated input + max output) to the real usage.

Budgets are a settled `spent` per period plus **reservations** (id → amount, deadline). A
call is admitted when spent + reserved + its worst case fits a hard budget; settling drops
the reservation and adds the real amount. A reservation whose call never settled (the gateway
died) expires at its deadline, so it cannot hold budget forever.

`admit` checks every applicable scope and commits only if all pass — in one step here, in one
Lua script in `RedisCounters`. USD amounts are integers in nano-dollars (no float drift).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from sluice.governance.spec import Period

WINDOW_S = 60.0
NANO = 1_000_000_000  # nano-USD per USD

RateUnit = Literal["requests", "tokens"]
BudgetUnit = Literal["usd", "tokens"]


class CounterBackendError(Exception):
    """The counter store could not answer (Redis down, timeout)."""


@dataclass(frozen=True, slots=True)
class RateCheck:
    key: str  # storage key, e.g. "rate:key:k_123:tokens"
    scope: str  # what the caller sees, e.g. "key:k_123"
    unit: RateUnit
    limit: int
    cost: int


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    key: str  # storage key, period bucket included, e.g. "budget:tenant:acme:usd:monthly:2026-11"
    scope: str
    period: Period
    unit: BudgetUnit
    limit: int  # nano-USD or tokens
    amount: int  # this call's worst case
    hard: bool
    resets_at: float | None  # epoch seconds; None for "total"
    downgrade_to: str | None = None


@dataclass(slots=True)
class RateState:
    used: int  # inside the window, this call included when admitted
    reset_s: float  # until the window holds nothing (the limit is whole again)


@dataclass(slots=True)
class BudgetState:
    spent: int
    reserved: int  # this call's reservation included when admitted


@dataclass(slots=True)
class Admission:
    admitted: bool
    rates: list[RateState] = field(default_factory=list)
    budgets: list[BudgetState] = field(default_factory=list)
    failed_rate: int | None = None  # index into the rate checks
    failed_budget: int | None = None  # index into the budget checks
    retry_after_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a finished call really used, for each check it was admitted under."""

    rate_costs: Sequence[tuple[str, int]]  # (rate key, real cost) — token limits only
    budget_amounts: Sequence[tuple[str, int, float | None]]  # (budget key, real amount, resets)


class CounterBackend(Protocol):
    async def admit(
        self,
        ticket: str,
        rates: Sequence[RateCheck],
        budgets: Sequence[BudgetCheck],
        reservation_ttl_s: float,
    ) -> Admission: ...

    async def settle(self, ticket: str, settlement: Settlement) -> list[int]:
        """Replace the reservation by the real amounts; returns each budget's new spent."""
        ...

    async def read(
        self, rates: Sequence[RateCheck], budgets: Sequence[BudgetCheck]
    ) -> Admission: ...

    async def close(self) -> None: ...


# --- in-process ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Log:
    entries: deque[tuple[float, str]] = field(default_factory=deque)  # (time, ticket), in order
    costs: dict[str, int] = field(default_factory=dict)
    total: int = 0

    def prune(self, now: float) -> None:
        horizon = now - WINDOW_S
        while self.entries and self.entries[0][0] <= horizon:
            _, ticket = self.entries.popleft()
            self.total -= self.costs.pop(ticket, 0)

    def retry_after(self, now: float, cost: int, limit: int) -> float:
        """Seconds until enough entries leave the window for `cost` to fit."""
        need = self.total + cost - limit
        if cost > limit:
            return WINDOW_S
        freed = 0
        for at, ticket in self.entries:
            freed += self.costs.get(ticket, 0)
            if freed >= need:
                return max(at + WINDOW_S - now, 0.0)
        return WINDOW_S

    def state(self, now: float) -> RateState:
        reset = self.entries[-1][0] + WINDOW_S - now if self.entries else 0.0
        return RateState(self.total, max(reset, 0.0))


@dataclass(slots=True)
class _Budget:
    spent: int = 0
    reserved: int = 0
    reservations: dict[str, tuple[int, float]] = field(default_factory=dict)  # amount, deadline
    expires_at: float | None = None  # the period's end: the bucket is dropped after it

    def prune(self, now: float) -> None:
        if not self.reservations:
            return
        for ticket, (amount, deadline) in list(self.reservations.items()):
            if deadline <= now:
                del self.reservations[ticket]
                self.reserved -= amount


class MemoryCounters:
    """One process's counters. Every method runs without awaiting, so it is atomic on the
    event loop."""

    SWEEP_EVERY = 10_000  # admissions between sweeps of idle counters

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._logs: dict[str, _Log] = {}
        self._budgets: dict[str, _Budget] = {}
        self._until_sweep = self.SWEEP_EVERY

    def __len__(self) -> int:
        return len(self._logs) + len(self._budgets)

    def sweep(self) -> None:
        """Forget windows that are empty and budget buckets whose period has ended, so
        counters for many keys and users do not pile up in a long-running process."""
        now = self._clock()
        for key, log in list(self._logs.items()):
            log.prune(now)
            if not log.entries:
                del self._logs[key]
        for key, account in list(self._budgets.items()):
            if account.expires_at is not None and account.expires_at <= now:
                del self._budgets[key]

    async def admit(
        self,
        ticket: str,
        rates: Sequence[RateCheck],
        budgets: Sequence[BudgetCheck],
        reservation_ttl_s: float,
    ) -> Admission:
        now = self._clock()
        self._until_sweep -= 1
        if self._until_sweep <= 0:
            self._until_sweep = self.SWEEP_EVERY
            self.sweep()
        logs = [self._log(c.key, now) for c in rates]
        accounts = [self._budget(c.key, c.resets_at, now) for c in budgets]
        result = Admission(admitted=True)
        for i, (check, log) in enumerate(zip(rates, logs, strict=True)):
            if log.total + check.cost > check.limit:
                result.admitted, result.failed_rate = False, i
                result.retry_after_s = log.retry_after(now, check.cost, check.limit)
                break
        if result.admitted:
            for i, (bcheck, account) in enumerate(zip(budgets, accounts, strict=True)):
                over = account.spent + account.reserved + bcheck.amount > bcheck.limit
                if bcheck.hard and over:
                    result.admitted, result.failed_budget = False, i
                    break
        if result.admitted:
            for check, log in zip(rates, logs, strict=True):
                log.entries.append((now, ticket))
                log.costs[ticket] = check.cost
                log.total += check.cost
            for bcheck, account in zip(budgets, accounts, strict=True):
                account.reservations[ticket] = (bcheck.amount, now + reservation_ttl_s)
                account.reserved += bcheck.amount
        result.rates = [log.state(now) for log in logs]
        result.budgets = [BudgetState(a.spent, a.reserved) for a in accounts]
        return result

    async def settle(self, ticket: str, settlement: Settlement) -> list[int]:
        now = self._clock()
        for key, cost in settlement.rate_costs:
            log = self._log(key, now)
            old = log.costs.get(ticket)
            if old is not None:  # still inside the window
                log.costs[ticket] = cost
                log.total += cost - old
        spent: list[int] = []
        for key, amount, resets_at in settlement.budget_amounts:
            account = self._budget(key, resets_at, now)
            held = account.reservations.pop(ticket, None)
            if held is not None:
                account.reserved -= held[0]
            account.spent += amount
            spent.append(account.spent)
        return spent

    async def read(self, rates: Sequence[RateCheck], budgets: Sequence[BudgetCheck]) -> Admission:
        now = self._clock()
        return Admission(
            admitted=True,
            rates=[self._log(c.key, now).state(now) for c in rates],
            budgets=[
                BudgetState(a.spent, a.reserved)
                for a in (self._budget(c.key, c.resets_at, now) for c in budgets)
            ],
        )

    async def close(self) -> None:
        self._logs.clear()
        self._budgets.clear()

    def _log(self, key: str, now: float) -> _Log:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = _Log()
        log.prune(now)
        return log

    def _budget(self, key: str, resets_at: float | None, now: float) -> _Budget:
        account = self._budgets.get(key)
        if account is not None and account.expires_at is not None and account.expires_at <= now:
            account = None  # a past period's bucket
        if account is None:
            account = self._budgets[key] = _Budget(expires_at=resets_at)
        account.prune(now)
        return account
