"""`sluice budgets`: spend against every budget named in the config, per period.

Live counters (spent and reserved, the numbers admission uses) come from Redis when
`limits.backend` is redis; otherwise, or with `--ledger`, spend is summed from the spend
ledger (`limits.ledger.store_url`) since the period began. Team, user and feature budgets
are per tenant (`--tenant`, default "default"). Keys' own budgets: `GET /v1/sluice/usage`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import click
import orjson

from sluice.governance.counters import NANO, BudgetCheck, CounterBackendError
from sluice.governance.ledger import spend_since
from sluice.governance.limits_config import EACH, LimitsConfig
from sluice.governance.scopes import Who, budget_checks, period_start
from sluice.governance.spec import Budget
from sluice.state import engines

_LEDGER_COLUMNS = {"tenant": "tenant", "team": "team", "user": "user_id", "feature": "feature"}


def _named_scopes(config: LimitsConfig, tenant: str) -> list[tuple[str, str, Budget]]:
    """(scope kind, name, budget) for every budget config names explicitly."""
    b = config.budgets
    tables = {"tenant": b.tenants, "team": b.teams, "user": b.users, "feature": b.features}
    out: list[tuple[str, str, Budget]] = []
    for kind, table in tables.items():
        for name, budgets in table.items():
            if name == EACH or (kind == "tenant" and name != tenant and tenant != EACH):
                continue
            out.extend((kind, name, budget) for budget in budgets)
    return out


def _check(kind: str, name: str, budget: Budget, tenant: str, now: float) -> list[BudgetCheck]:
    only = LimitsConfig().budgets.model_copy(update={f"{kind}s": {name: [budget]}})
    if kind == "tenant":
        who = Who.of_names(tenant=name)
    else:
        who = Who.of_names(tenant=tenant, **{kind: name})
    return budget_checks(who, LimitsConfig(budgets=only), now, 0, 0)


async def _live(config: LimitsConfig, checks: list[BudgetCheck]) -> list[tuple[int, int]]:
    from sluice.governance.redis_counters import RedisCounters

    counters = RedisCounters(config.redis_url, config.key_prefix, timeout_s=2.0)
    try:
        state = await counters.read([], checks)
    finally:
        await counters.close()
    return [(s.spent, s.reserved) for s in state.budgets]


def _from_ledger(url: str, rows: list[tuple[str, str, BudgetCheck]], now: float) -> list[int]:
    engine = engines.acquire(url)
    try:
        out: list[int] = []
        for kind, name, check in rows:
            tenant = name if kind == "tenant" else check.scope.split(":", 1)[1].split("/")[0]
            since = period_start(check.period, now)
            spend = spend_since(engine, _LEDGER_COLUMNS[kind], since, tenant).get(name, {})
            if check.unit == "usd":
                out.append(int(spend.get("usd", 0) * NANO))
            else:
                out.append(int(spend.get("tokens", 0)))
        return out
    finally:
        engines.release(engine)


def budget_report(config: LimitsConfig, tenant: str, use_ledger: bool) -> list[dict[str, Any]]:
    now = time.time()
    rows = [
        (kind, name, check)
        for kind, name, budget in _named_scopes(config, tenant)
        for check in _check(kind, name, budget, tenant, now)
    ]
    checks = [c for _, _, c in rows]
    if not use_ledger and config.backend == "redis":
        try:
            states = asyncio.run(_live(config, checks))
        except CounterBackendError as exc:
            raise click.ClickException(f"Redis at {config.redis_url}: {exc}") from None
        source = "redis"
    elif config.ledger.store_url:
        states = [(s, 0) for s in _from_ledger(config.ledger.store_url, rows, now)]
        source = "ledger"
    else:
        raise click.ClickException(
            "no shared spend to read: set limits.backend: redis or limits.ledger.store_url"
        )
    report = []
    for check, (spent, reserved) in zip(checks, states, strict=True):
        scale = NANO if check.unit == "usd" else 1
        report.append(
            {
                "scope": check.scope,
                "period": check.period,
                "unit": check.unit,
                "kind": "hard" if check.hard else "soft",
                "limit": check.limit / scale,
                "spent": spent / scale,
                "reserved": reserved / scale,
                "utilisation": round(spent / check.limit, 4),
                "resets_at": datetime.fromtimestamp(check.resets_at, UTC).isoformat()
                if check.resets_at
                else None,
                "source": source,
            }
        )
    return report


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.option("--tenant", default="default", show_default=True, help="For team/user/feature.")
@click.option("--ledger", "use_ledger", is_flag=True, help="Sum the ledger, not live counters.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def budgets(config_path: str | None, tenant: str, use_ledger: bool, as_json: bool) -> None:
    """Spend against every budget named in the config, this period."""
    from sluice.config import ConfigError, default_config, load_config

    try:
        config = (load_config(config_path) if config_path else default_config()).limits
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    report = budget_report(config, tenant, use_ledger)
    if as_json:
        click.echo(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
        return
    if not report:
        click.echo("no budgets named in limits.budgets")
        return
    click.echo(f"{'scope':<32} {'period':<8} {'kind':<5} {'spent':>14} {'limit':>14} {'used':>7}")
    for r in report:
        unit = "$" if r["unit"] == "usd" else ""
        spent, limit = f"{unit}{r['spent']:.6g}", f"{unit}{r['limit']:.6g}"
        click.echo(
            f"{r['scope']:<32} {r['period']:<8} {r['kind']:<5} {spent:>14} {limit:>14} "
            f"{r['utilisation']:>7.1%}"
        )
