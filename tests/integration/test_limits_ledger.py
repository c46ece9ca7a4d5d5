"""The spend ledger: rows written in batches off the request path, on SQLite and PostgreSQL,
with the table from the Alembic revisions `0002_spend_ledger` and `0003_ledger_once`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from sluice.governance.ledger import Ledger, LedgerRow, spend_since
from sluice.governance.limits_config import LedgerConfig
from sluice.state import migrations
from tests.governance_rig import postgres_schema

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    with postgres_schema() as url:
        yield url


def row(i: int, tenant: str, usd: str | None) -> LedgerRow:
    return LedgerRow(
        ts=time.time(),
        request_id=f"req_{i}",
        tenant=tenant,
        key_id="k1",
        team=None,
        user_id="alice",
        feature="chat",
        model="gpt-4o-mini",
        deployment="sim-mini",
        input_tokens=10,
        output_tokens=5,
        cost_usd=Decimal(usd) if usd is not None else None,
    )


async def test_rows_are_batched_and_summed(store_url: str) -> None:
    ledger = Ledger(LedgerConfig(store_url=store_url, batch_size=50, flush_interval_s=0.05))
    started = time.time()
    for i in range(120):
        ledger.add(row(i, "acme" if i % 3 else "other", "0.0000015"))
    ledger.add(row(999, "acme", None))  # unknown price: NULL, not 0
    await ledger.close()  # flushes what the writer has not written yet
    assert ledger.written == 121 and ledger.dropped == 0
    assert migrations.current(store_url) == "0003_ledger_once"
    engine = sa.create_engine(store_url)
    try:
        spend = spend_since(engine, "tenant", started - 1)
    finally:
        engine.dispose()
    assert spend["acme"]["calls"] == 81 and spend["other"]["calls"] == 40
    assert spend["acme"]["usd"] == Decimal("0.0000015") * 80
    assert spend["other"]["tokens"] == 40 * 15


def test_downgrade_removes_only_the_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrations.upgrade(url)
    migrations.downgrade(url, "0001_keys")
    engine = sa.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "sluice_keys" in tables and "sluice_spend_ledger" not in tables
