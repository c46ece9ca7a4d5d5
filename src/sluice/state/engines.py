"""One SQLAlchemy engine per database URL, shared by every store in the process.

Keys, the spend ledger, call records and the semantic store used to make an engine each
(four pools to one database in the default config, each with its own SQLite settings).
`acquire(url)` hands out the one engine for a URL and counts its users; `release(engine)`
disposes of it when the last user lets go, so a store's `close()` never pulls the pool
from under another store.

Per dialect, set once here:
- PostgreSQL: `postgresql://` means psycopg 3 (SQLAlchemy alone would pick psycopg2);
  `pool_pre_ping` so a connection dropped by a restart is replaced, not handed out.
- SQLite file: WAL (readers do not block the writer), `synchronous=NORMAL`, a 30 s busy
  timeout (several stores write the same file), the file's directory made on first use.
- SQLite in memory: one shared connection (`StaticPool`), so every thread sees one database.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

_MEMORY_PATHS = (None, "", ":memory:")


@dataclass(slots=True)
class _Shared:
    engine: Engine
    users: int


_lock = threading.Lock()
_engines: dict[str, _Shared] = {}


def database_url(url: str) -> str:
    """The URL SQLAlchemy is given: `postgresql://` and `postgres://` mean psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_memory_sqlite(url: str) -> bool:
    parsed = make_url(database_url(url))
    return parsed.get_backend_name() == "sqlite" and parsed.database in _MEMORY_PATHS


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None: not SQLite, or in memory)."""
    parsed = make_url(database_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in _MEMORY_PATHS:
        return None
    return Path(str(parsed.database))


def acquire(url: str) -> Engine:
    """The process's engine for `url` (made on first use); pair with `release`."""
    key = database_url(url)
    with _lock:
        shared = _engines.get(key)
        if shared is None:
            shared = _engines[key] = _Shared(_make_engine(key), 0)
        shared.users += 1
        return shared.engine


def release(engine: Engine) -> None:
    """One user fewer; the last one disposes of the engine's connections."""
    with _lock:
        for key, shared in _engines.items():
            if shared.engine is engine:
                shared.users -= 1
                if shared.users > 0:
                    return
                del _engines[key]
                break
    engine.dispose()


def _make_engine(url: str) -> Engine:
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if is_memory_sqlite(url):
        return create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    file = sqlite_file(url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine
