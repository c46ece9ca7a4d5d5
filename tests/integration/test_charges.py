"""Held charges (`sluice.state.charges`) and the columns that keep them, on SQLite and
PostgreSQL: a charge written twice is one ledger row; ordinary ledger rows (no once_key)
are never refused; the migrations add `once_key`/`charge` to databases made before them,
keeping their rows, and take them away again."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from sluice.governance.ledger import LedgerRow
from sluice.state import charges, engines, migrations
from sluice.state.tables import spend_ledger
from tests.governance_rig import postgres_schema

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'c.db'}"
        return
    with postgres_schema() as made:
        yield made


def _row(request_id: str, tokens: int = 7) -> LedgerRow:
    return LedgerRow(
        1.0, request_id, "t", "k1", None, None, None, "m", "d", tokens, 2, Decimal("0.0000125")
    )


def _ledger(url: str) -> list[tuple[str, int, Decimal | None, str | None]]:
    engine = engines.acquire(url)
    try:
        with engine.connect() as conn:
            t = spend_ledger.c
            stmt = sa.select(t.request_id, t.input_tokens, t.cost_usd, t.once_key)
            return [tuple(r) for r in conn.execute(stmt.order_by(t.id))]
    finally:
        engines.release(engine)


def test_a_charge_written_twice_is_one_row(url: str) -> None:
    migrations.upgrade(url, "governance")
    held = charges.encode(_row("b-1"), "batch:b:1", after={"batch": "b"})
    assert charges.decode(held)[1] == {"batch": "b"}
    engine = engines.acquire(url)
    try:
        assert charges.write(engine, [held, charges.encode(_row("b-2"), "batch:b:2")]) == 2
        again = charges.encode(_row("b-1", tokens=99), "batch:b:1")  # a re-run's answer
        assert charges.write(engine, [held, again]) == 0
        with engine.begin() as conn:  # ordinary rows carry no key: never refused
            row = {f.name: getattr(_row("x"), f.name) for f in dataclasses.fields(LedgerRow)}
            conn.execute(spend_ledger.insert(), [row, row])
    finally:
        engines.release(engine)
    assert _ledger(url) == [
        ("b-1", 7, Decimal("0.0000125"), "batch:b:1"),
        ("b-2", 7, Decimal("0.0000125"), "batch:b:2"),
        ("x", 7, Decimal("0.0000125"), None),
        ("x", 7, Decimal("0.0000125"), None),
    ]


def test_a_held_charge_without_a_key_is_refused() -> None:
    with pytest.raises(ValueError, match="once_key"):
        charges.decode('{"ledger": {"request_id": "r"}}')


@pytest.mark.parametrize(
    ("branch", "before", "table", "column"),
    [
        ("governance", "0002_spend_ledger", "sluice_spend_ledger", "once_key"),
        ("batch", "b0001_batches", "sluice_batch_items", "charge"),
        ("jobs", "j0001_jobs", "sluice_jobs", "charge"),
    ],
)
def test_the_migrations_add_and_remove_the_columns(
    url: str, branch: str, before: str, table: str, column: str
) -> None:
    migrations.upgrade(url, branch, to=before)
    engine = engines.acquire(url)

    def columns() -> set[str]:
        with engine.connect() as conn:
            return {c["name"] for c in sa.inspect(conn).get_columns(table)}

    try:
        assert column not in columns()
        migrations.upgrade(url, branch)
        assert column in columns()
        migrations.downgrade(url, before, branch=branch)
        assert column not in columns()
        migrations.upgrade(url, branch)  # and up again
        assert column in columns()
    finally:
        engines.release(engine)
