"""Replicas starting together on an empty PostgreSQL database never race: four processes
open every store at once (keys, ledger, records, semantic store), round after round, on a
new database. Before the one Alembic environment this failed with `UniqueViolation ...
CREATE TABLE call_records`, or the semantic store fell back to memory only.

The processes come from a forkserver that has imported Sluice once, so a round costs the
migrations, not four interpreter starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import traceback
import uuid
from collections.abc import Iterator
from multiprocessing.synchronize import Barrier

import pytest
import sqlalchemy as sa

from sluice.state import engines, migrations

pytestmark = pytest.mark.integration

SERVER = os.environ.get(
    "SLUICE_TEST_POSTGRES_SERVER", "postgresql+psycopg://postgres@127.0.0.1:5432"
)
# The default suite runs 2 rounds; `SLUICE_RACE_ROUNDS=20` is the full proof (~110 s here).
ROUNDS = int(os.environ.get("SLUICE_RACE_ROUNDS", "2"))
REPLICAS = 4


def start_replica(url: str, barrier: Barrier) -> str | None:
    """What a replica does with its state at startup; the error, or None."""
    try:
        from sluice.cache.semantic.catalog import SemanticCatalog
        from sluice.cache.semantic.store import PostgresStore
        from sluice.governance.ledger import Ledger, LedgerRow
        from sluice.governance.limits_config import LedgerConfig
        from sluice.governance.store import KeyStore
        from sluice.observe.store import RecordStore

        barrier.wait(timeout=60)

        async def replica() -> None:
            records = await asyncio.to_thread(RecordStore.open, url)
            keys = KeyStore(url, b"race-pepper")
            await asyncio.to_thread(keys.migrate)
            ledger = Ledger(LedgerConfig(store_url=url, flush_interval_s=0.01))
            ledger.add(LedgerRow(1.0, "r", "t", None, None, None, None, "m", None, 1, 1, None))
            store = PostgresStore(url, "sluice_semantic_cache")
            await store.open(SemanticCatalog(4, 10))
            try:
                assert store._task is not None and not store._task.done()  # listening
                assert await store.reload() == 0  # the table is there, not memory only
            finally:
                await store.close()
                await ledger.close()
                keys.close()
                records.close()

        asyncio.run(replica())
        return None
    except BaseException:
        return traceback.format_exc()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    admin = sa.create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    name = f"sluice_race_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except Exception as exc:  # pragma: no cover - depends on the machine
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield f"{SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def test_four_replicas_start_together_on_an_empty_database() -> None:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["sluice.observe.store", "sluice.cache.semantic.store"])
    manager = ctx.Manager()
    try:
        for round_ in range(ROUNDS):
            with fresh_database() as url:
                barrier = manager.Barrier(REPLICAS)
                with ctx.Pool(REPLICAS) as pool:
                    errors = pool.starmap(start_replica, [(url, barrier)] * REPLICAS)
                assert errors == [None] * REPLICAS, f"round {round_}:\n" + "\n".join(
                    e for e in errors if e
                )
                assert migrations.current(url, "records") == "r0005_retrieval"
                assert migrations.current(url, "semantic") == "s0001_semantic_cache"
                assert migrations.current(url, "governance") == "0003_ledger_once"
                engine = engines.acquire(url)
                try:
                    with engine.connect() as conn:
                        rows = conn.exec_driver_sql("SELECT count(*) FROM sluice_spend_ledger")
                        assert rows.scalar() == REPLICAS
                finally:
                    engines.release(engine)
    finally:
        manager.shutdown()
