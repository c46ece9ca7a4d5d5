"""One Alembic environment for every table Sluice keeps, run in-process.

Independent branches in `versions/`, so each store creates only its own tables in
whatever database it is pointed at (a records-only PostgreSQL gets no key table):

- `governance`: `0001_keys` → `0002_spend_ledger` → `0003_ledger_once` (keys, spend ledger)
- `records`: `r0001_call_records` (adopts a table made by the old `create_all`)
- `semantic`: `s0001_semantic_cache` (adopts a table made by the old `create_all`)
- `cache`: `c0001_cache_mirror` (the exact-cache mirror file's `entries`)
- `eval`: `e0001_eval` (feedback, saved eval runs, shadow pairs, online scores; adopts the
  first two when the old `create_all` made them) → `e0002_score_tenant`
- `queue`: `q0001_queue` (the embedded queue's `sluice_queue`)
- `pgqueue`: `p0001_pgqueuer` (the shared queue's pgqueuer tables, PostgreSQL only; their
  prefix, `queue.name`, is the branch's table name)
- `jobs`: `j0001_jobs` (async jobs and their webhook delivery log) → `j0002_job_charge`
- `files`: `f0001_files` (uploaded files; the bytes too on PostgreSQL)
- `batch`: `b0001_batches` (batches and their items) → `b0002_item_charge`
- `retrieval`: `v0001_vector_stores` (vector stores, their files, chunks, file batches) →
  `v0002_store_expiry`

The version table is `sluice_alembic_version` (a database shared with other applications'
Alembic histories is not confused). Records and semantic tables may be renamed in config;
a renamed table keeps its branch's revision in a version table named after it, so two
differently named record tables in one database are each created.

Replicas starting together: `upgrade` holds a PostgreSQL advisory lock for the whole
migration (PostgreSQL DDL is transactional, so the others wait, then find it at head), and
on SQLite an exclusive lock on `<file>.migrate.lock`. Blocking: call via `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from sluice.state import engines
from sluice.state.tables import RECORDS_TABLE, SEMANTIC_TABLE

VERSION_TABLE = "sluice_alembic_version"
LOCK_ID = 0x51_0C_E0_01  # pg_advisory_xact_lock key: any constant unique to Sluice
BRANCHES = (
    "governance",
    "records",
    "semantic",
    "cache",
    "eval",
    "queue",
    "pgqueue",
    "jobs",
    "files",
    "batch",
    "retrieval",
)
PGQUEUE_PREFIX = "sluice_"  # `queue.name`'s default
_DEFAULT_TABLES = {"records": RECORDS_TABLE, "semantic": SEMANTIC_TABLE, "pgqueue": PGQUEUE_PREFIX}
_HERE = Path(__file__).parent


def version_table(branch: str, table: str | None = None) -> str:
    """Where `branch`'s revision is kept: the shared version table, unless the branch's
    table was given a name of its own."""
    if table is None or table == _DEFAULT_TABLES.get(branch, table):
        return VERSION_TABLE
    return f"{VERSION_TABLE}_{table}"[:63]


def alembic_config(
    connection: Connection, version_table: str, tables: dict[str, str] | None = None
) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    config.attributes["version_table"] = version_table
    config.attributes["tables"] = {**_DEFAULT_TABLES, **(tables or {})}
    return config


def upgrade(
    url: str, branch: str = "governance", *, table: str | None = None, to: str | None = None
) -> None:
    """Bring `branch`'s tables in the database at `url` to their newest revision (or to
    revision `to`: tests of a migration over an older schema)."""
    tables = {branch: table} if table else None
    _run(
        url,
        version_table(branch, table),
        tables,
        lambda cfg: command.upgrade(cfg, to or f"{branch}@head"),
    )


def upgrade_all(url: str) -> None:
    """Every table at its newest revision (`sluice db upgrade`)."""
    _run(url, VERSION_TABLE, None, lambda cfg: command.upgrade(cfg, "heads"))


def downgrade(
    url: str, revision: str, *, table: str | None = None, branch: str = "governance"
) -> None:
    """`revision` may be `base` (that is, `<branch>@base`) or a revision id."""
    target = f"{branch}@base" if revision == "base" else revision
    _run(
        url,
        version_table(branch, table),
        {branch: table} if table else None,
        lambda cfg: command.downgrade(cfg, target),
    )


def drop(url: str, branch: str, *, table: str) -> None:
    """Drop `branch`'s table and, for a table with a name of its own, its version table
    (tests and short-lived tables)."""
    downgrade(url, "base", branch=branch, table=table)
    versions = version_table(branch, table)
    if versions != VERSION_TABLE:
        engine = engines.acquire(url)
        try:
            with engine.begin() as conn:
                quoted = conn.dialect.identifier_preparer.quote(versions)
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quoted}")
        finally:
            engines.release(engine)


def current(url: str, branch: str = "governance", *, table: str | None = None) -> str | None:
    """The revision `branch` is at in the database (None: never migrated)."""
    engine = engines.acquire(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"version_table": version_table(branch, table)}
            )
            heads = ctx.get_current_heads()
    finally:
        engines.release(engine)
    mine = [h for h in heads if _branch_of(h) == branch]
    return mine[0] if mine else None


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(_HERE))


def _branch_of(revision: str) -> str | None:
    for rev in _scripts().iterate_revisions(revision, "base"):
        if rev is not None and rev.branch_labels:
            return next(iter(rev.branch_labels))
    return None


def _run(
    url: str, versions: str, tables: dict[str, str] | None, run: Callable[[Config], None]
) -> None:
    engine = engines.acquire(url)
    try:
        with _file_lock(url), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Replicas starting together: one migrates, the others wait here, then
                # find every revision applied (held until this transaction ends).
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
            run(alembic_config(conn, versions, tables))
    finally:
        engines.release(engine)


@contextlib.contextmanager
def _file_lock(url: str) -> Iterator[None]:
    """An exclusive lock beside a SQLite file, so processes migrate it one at a time."""
    file = engines.sqlite_file(url)
    if file is None:
        yield
        return
    import fcntl

    file.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{file}.migrate.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
