"""The key store and its Alembic migrations, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select

from sluice.governance.keys import KeyCreate, KeyUpdate
from sluice.governance.spec import Budget, RateLimits
from sluice.governance.store import KeyStore
from sluice.state import migrations
from sluice.state.tables import keys
from tests.governance_rig import postgres_schema

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keys.db'}"
    else:
        with postgres_schema() as url:
            yield url


def test_migrations_go_up_down_and_up_again(store_url: str) -> None:
    assert migrations.current(store_url) is None
    migrations.upgrade(store_url)
    assert migrations.current(store_url) == "0003_ledger_once"  # head
    migrations.upgrade(store_url)  # idempotent
    engine = create_engine(store_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("sluice_keys")}
        assert columns == {c.name for c in keys.columns}  # migration == schema.py
        indexes = {i["name"] for i in inspect(engine).get_indexes("sluice_keys")}
        assert {"ix_sluice_keys_key_hash", "ix_sluice_keys_tenant"} <= indexes
        migrations.downgrade(store_url, "base")
        assert migrations.current(store_url) is None
        assert not inspect(engine).has_table("sluice_keys")
    finally:
        engine.dispose()
    migrations.upgrade(store_url)
    assert migrations.current(store_url) == "0003_ledger_once"  # head


def test_keys_round_trip_and_the_key_is_never_stored(store_url: str) -> None:
    store = KeyStore(store_url, b"store-test-pepper-1")
    store.migrate()
    try:
        spec = KeyCreate(
            tenant="acme",
            team="blue",
            user="ann",
            tier="gold",
            name="ci",
            allowed_models=["gpt-4o-mini"],
            limits=RateLimits(rpm=60),
            budgets=[Budget(period="daily", usd=5.0)],
            metadata={"owner": {"email": "a@example.com"}, "n": 1},
            expires_at=4_000_000_000,
        )
        record, key = store.create(spec, now=1000.0)
        with store.engine.connect() as conn:
            row = conn.execute(select(keys)).mappings().one()
        assert key not in str(dict(row)) and key[12:] not in str(dict(row))
        assert store.find(key) == record and store.get(record.key_id) == record
        assert record.identity().budgets == (Budget(period="daily", usd=5.0),)
        assert record.limits == RateLimits(rpm=60)
        assert store.find(key + "x") is None
        other = KeyStore(store_url, b"a-different-pepper")
        assert other.find(key) is None  # the pepper is part of the hash
        other.close()

        patch = KeyUpdate.model_validate({"tier": "silver", "expires_at": None, "limits": None})
        updated = store.update(record.key_id, patch, now=2000.0)
        assert updated is not None
        assert (updated.tier, updated.expires_at, updated.limits) == ("silver", None, RateLimits())
        assert (updated.team, updated.allowed_models) == ("blue", ("gpt-4o-mini",))
        assert store.update("key_0000000000000000", patch) is None

        revoked = store.revoke(record.key_id, now=3000.0)
        assert revoked is not None and revoked.revoked_at == 3000.0
        again = store.revoke(record.key_id, now=4000.0)
        assert again is not None and again.revoked_at == 3000.0
        store.create(KeyCreate(tenant="globex"))
        assert [r.tenant for r in store.list()] == ["acme", "globex"]
        assert [r.tenant for r in store.list("globex")] == ["globex"]
        assert len(store.list(limit=1, offset=1)) == 1
    finally:
        store.close()


def test_replicas_migrating_at_once_on_postgresql() -> None:
    """Three processes upgrade one empty store together: the advisory lock serializes them."""
    with postgres_schema() as url:
        code = f"from sluice.state import migrations; migrations.upgrade({url!r})"
        procs = [
            subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0], errors
        assert migrations.current(url) == "0003_ledger_once"  # head
