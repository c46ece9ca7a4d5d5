"""`sluice budgets`: spend vs budget from live Redis counters and from the spend ledger."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from sluice.cli import main
from sluice.governance.counters import Settlement
from sluice.governance.ledger import Ledger, LedgerRow
from sluice.governance.limits_config import LedgerConfig, LimitsConfig
from sluice.governance.redis_counters import RedisCounters
from sluice.governance.scopes import Who, budget_checks
from tests.integration.test_limits_redis import REDIS_URL

pytestmark = pytest.mark.integration

BASE = Path(__file__).parents[2] / "examples" / "sim.yaml"


def config_file(tmp_path: Path, limits: str) -> str:
    path = tmp_path / "sluice.yaml"
    path.write_text(BASE.read_text() + "\nlimits:\n" + limits)
    return str(path)


async def test_budgets_from_live_redis_counters(tmp_path: Path) -> None:
    prefix = f"sluice-test:limits:{uuid.uuid4().hex}:"
    path = config_file(
        tmp_path,
        f"""  enabled: true
  backend: redis
  redis_url: {REDIS_URL}
  key_prefix: "{prefix}"
  budgets:
    tenants:
      acme: [{{period: monthly, usd: 10}}]
    features:
      chat: [{{period: daily, tokens: 1000, kind: soft}}]
""",
    )
    config = LimitsConfig.model_validate(
        {
            "budgets": {
                "tenants": {"acme": [{"usd": 10}]},
                "features": {"chat": [{"period": "daily", "tokens": 1000, "kind": "soft"}]},
            }
        }
    )
    who = Who.of_names(tenant="acme", feature="chat")
    checks = budget_checks(who, config, time.time(), 300, 2 * 10**9)
    counters = RedisCounters(REDIS_URL, prefix)
    try:
        assert (await counters.admit("t1", [], checks, 60)).admitted
        amounts = [(c.key, 2_500_000_000 if c.unit == "usd" else 250, c.resets_at) for c in checks]
        await counters.settle("t1", Settlement([], amounts))
        args = ["budgets", "--config", path, "--tenant", "acme", "--json"]
        result = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert result.exit_code == 0, result.output
        report = {(r["scope"], r["unit"]): r for r in orjson.loads(result.output)}
        assert report[("tenant:acme", "usd")]["spent"] == 2.5
        assert report[("tenant:acme", "usd")]["utilisation"] == 0.25
        assert report[("feature:acme/chat", "tokens")]["spent"] == 250
        table = await asyncio.to_thread(
            CliRunner().invoke, main, ["budgets", "--config", path, "--tenant", "acme"]
        )
        assert "tenant:acme" in table.output and "$2.5" in table.output and "25.0%" in table.output
    finally:
        await counters.clear()
        await counters.close()


async def test_budgets_from_the_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(LedgerConfig(store_url=url, flush_interval_s=0.01))
    for i in range(4):
        ledger.add(
            LedgerRow(
                time.time(),
                f"r{i}",
                "default",
                None,
                None,
                None,
                None,
                "m",
                None,
                100,
                50,
                Decimal("0.25"),
            )
        )
    await ledger.close()
    path = config_file(
        tmp_path,
        f"""  enabled: true
  ledger: {{store_url: "{url}"}}
  budgets:
    tenants:
      default: [{{period: weekly, usd: 4}}]
""",
    )
    result = CliRunner().invoke(main, ["budgets", "--config", path, "--json"])
    assert result.exit_code == 0, result.output
    [row] = orjson.loads(result.output)
    assert (row["scope"], row["spent"], row["limit"], row["source"]) == (
        "tenant:default",
        1.0,
        4.0,
        "ledger",
    )
