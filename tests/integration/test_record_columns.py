"""Databases made by Sluice before the one Alembic environment upgrade cleanly: the tables
made by `create_all` (records, semantic store) and raw SQL (cache mirror) are adopted, the
columns added since are added, and the governance history carries on."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from sluice.cache.backends import MemoryBackend
from sluice.cache.persist import SqliteMirror
from sluice.observe.records import CallRecord
from sluice.observe.store import RecordStore
from sluice.state import engines, migrations
from sluice.state.tables import records_table, semantic_table
from tests.governance_rig import postgres_schema

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        with postgres_schema() as schema_url:
            yield schema_url


def _as_the_old_code_made_it(url: str) -> None:
    """Records and semantic tables by `create_all` (records from before routing: without
    its two columns), keys and ledger by the old governance Alembic history."""
    migrations.upgrade(url, "governance")  # 0001 + 0002, as before (same revision ids)
    engine = sa.create_engine(engines.database_url(url))
    try:
        old = records_table()
        old._columns.remove(old.c.route_decision)
        old._columns.remove(old.c.routing_saved_usd)
        old.metadata.create_all(engine)
        semantic_table().metadata.create_all(engine)
        with engine.begin() as conn:
            conn.execute(
                old.insert().values(
                    request_id="old",
                    kind="call",
                    ts=1.0,
                    model_requested="m",
                    attempts=1,
                    fallback_triggered=False,
                    stream=False,
                    input_tokens=1,
                    output_tokens=2,
                    cache_read_tokens=0,
                    cache_write_tokens=0,
                    latency_ms=1.0,
                    status=200,
                )
            )
    finally:
        engine.dispose()


def test_an_old_database_is_adopted_and_upgraded(url: str) -> None:
    _as_the_old_code_made_it(url)
    assert migrations.current(url, "records") is None
    store = RecordStore.open(url)
    try:
        store.write_batch([CallRecord(request_id="r1", route_decision="rules: x -> gpt-4o")])
        old, new = store.query()
        assert (old.request_id, old.output_tokens) == ("old", 2)  # kept
        assert new.route_decision == "rules: x -> gpt-4o"
    finally:
        store.close()
    migrations.upgrade(url, "semantic")  # the existing table, adopted
    assert migrations.current(url, "records") == "r0005_retrieval"
    assert migrations.current(url, "semantic") == "s0001_semantic_cache"
    assert migrations.current(url, "governance") == "0003_ledger_once"
    engine = sa.create_engine(engines.database_url(url))
    try:
        indexes = {i["name"] for i in sa.inspect(engine).get_indexes("call_records")}
    finally:
        engine.dispose()
    assert {"ix_call_records_ts", "ix_call_records_request_id"} <= indexes


async def test_an_old_cache_mirror_file_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "mirror.db"
    with sqlite3.connect(path) as conn:  # the raw schema the mirror used to make
        conn.execute(
            "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL,"
            " expires_at REAL NOT NULL, tags TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO entries VALUES ('k', x'01', 4000000000, '[\"t\"]')")
    backend = MemoryBackend()
    mirror = SqliteMirror(path, backend)
    assert await mirror.start() == 1
    await mirror.close()
    assert migrations.current(f"sqlite:///{path}", "cache") == "c0001_cache_mirror"
