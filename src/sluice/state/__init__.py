"""One home for state: where every table, engine and Redis pool of the process comes from.

- `tables`: every table Sluice keeps, defined once.
- `migrations`: the one Alembic environment that creates and evolves all of them, under a
  PostgreSQL advisory lock (SQLite: a file lock) so replicas starting together never race.
- `engines`: one SQLAlchemy engine per database URL, shared by every store.
- `redis`: one Redis connection pool per URL, shared by the cache, the counters and the
  key-change broadcast.
- `paths`: `state_dir`, where relative SQLite paths of the config are resolved.

This is the bottom layer: it imports nothing from the rest of Sluice.
"""
