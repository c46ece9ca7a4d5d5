"""pgqueuer's tables are in our Alembic history (branch `pgqueue`): a fresh PostgreSQL gets
them from the migration, at exactly pgqueuer's own declaration; a database where pgqueuer
installed them itself (Sluice before the branch) is adopted with its waiting items; two
replicas starting at once on an empty database both come up; a downgrade removes them.
SQLite: the branch does nothing (the embedded queue is branch `queue`)."""

from __future__ import annotations

import asyncio
import multiprocessing
import traceback
import uuid
from multiprocessing.synchronize import Barrier
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from sluice.queue import Job, Priority, QueueSettings, build_queue
from sluice.queue.pg import PgQueue, _dsn
from sluice.state import migrations
from tests.governance_rig import postgres_schema

pytestmark = pytest.mark.integration


def _prefix() -> str:
    return "t" + uuid.uuid4().hex[:8] + "_"


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


async def test_a_fresh_database_gets_pgqueuers_schema_from_our_migration() -> None:
    with postgres_schema() as url:
        prefix = _prefix()
        queue = PgQueue(url, name=prefix)
        await queue.start()
        try:
            assert migrations.current(url, "pgqueue", table=prefix) == "p0001_pgqueuer"
            assert f"{prefix}pgqueuer" in _tables(url)
            plan = await queue.queries.plan_upgrade()  # pgqueuer's declaration, exactly
            assert tuple(plan.statements) == (), plan.statements
            await queue.enqueue("k", {"n": 1}, Priority.JOB)
            assert await queue.depth_by_priority() == {"interactive": 0, "job": 1, "batch": 0}
        finally:
            await queue.close()
        await asyncio.to_thread(migrations.downgrade, url, "base", branch="pgqueue", table=prefix)
        assert not {t for t in _tables(url) if t.startswith(prefix)}


async def test_tables_pgqueuer_installed_itself_are_adopted_with_their_items() -> None:
    with postgres_schema() as url:
        prefix = _prefix()
        old = PgQueue(url, name=prefix)  # what Sluice did before the branch
        async with await psycopg.AsyncConnection.connect(_dsn(url), autocommit=True) as conn:
            await old._make_queries(conn).install(create_schema=False)
        assert migrations.current(url, "pgqueue", table=prefix) is None
        queue = build_queue(QueueSettings(url=url, name=prefix, poll_interval_s=0.1))
        await queue.start()
        try:
            await queue.enqueue("k", {"n": "kept"}, Priority.BATCH)
            await queue.close()
            await queue.start()  # a restart: nothing installed twice
            assert migrations.current(url, "pgqueue", table=prefix) == "p0001_pgqueuer"
            seen: list[str] = []

            async def handle(job: Job) -> None:
                seen.append(job.payload["n"])

            await queue.drain({"k": handle}, concurrency=1)
            assert seen == ["kept"]
        finally:
            await queue.close()


def _replica(url: str, prefix: str, barrier: Barrier) -> str | None:
    try:
        barrier.wait(timeout=60)

        async def start() -> None:
            queue = PgQueue(url, name=prefix)
            await queue.start()
            await queue.enqueue("k", {"n": 1}, Priority.JOB)
            await queue.close()

        asyncio.run(start())
        return None
    except BaseException:
        return traceback.format_exc()


@pytest.mark.parametrize("round_", range(2))
def test_replicas_starting_together_on_an_empty_database(round_: int) -> None:
    with postgres_schema() as url:
        prefix = _prefix()
        ctx = multiprocessing.get_context("spawn")
        with ctx.Manager() as manager:
            barrier = manager.Barrier(3)
            with ctx.Pool(3) as pool:
                errors = pool.starmap(_replica, [(url, prefix, barrier)] * 3)
        assert errors == [None, None, None], "\n".join(e for e in errors if e)
        assert migrations.current(url, "pgqueue", table=prefix) == "p0001_pgqueuer"


def test_on_sqlite_the_branch_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    migrations.upgrade(url, "pgqueue")
    assert migrations.current(url, "pgqueue") == "p0001_pgqueuer"
    assert _tables(url) == {migrations.VERSION_TABLE}
