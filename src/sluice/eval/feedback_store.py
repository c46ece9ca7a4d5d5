"""`FeedbackStore`: user feedback in SQLite or PostgreSQL, beside the call records.

It lives in the records store's database (the same URL, `observability.records.store_url`),
in its own table `sluice_feedback`, so `sluice eval export` can join feedback to the call
records with one database URL. One row per (tenant, request id): sending feedback again
replaces the earlier one (a user who changes their mind), which also bounds the rows a
caller can create to one per call it made.

Synchronous, blocking I/O (SQLAlchemy Core): call it through `asyncio.to_thread`.
"""

from __future__ import annotations

import orjson
from sqlalchemy import Engine, delete, select

from sluice.eval.feedback import Feedback
from sluice.state import engines, migrations, tables

TABLE = tables.FEEDBACK_TABLE


def make_engine(url: str) -> Engine:
    """The process's shared engine for `url` (sluice.state: one per database; pair with
    `engines.release`)."""
    return engines.acquire(url)


class FeedbackStore:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.table = tables.feedback

    @classmethod
    def open(cls, url: str) -> FeedbackStore:
        """A store whose table exists (Alembic branch `eval`, sluice.state.migrations)."""
        migrations.upgrade(url, "eval")
        return cls(url)

    def close(self) -> None:
        engines.release(self.engine)

    def put(self, fb: Feedback) -> None:
        """Store `fb`, replacing earlier feedback of the same tenant on the same call."""
        t = self.table
        row = {
            "tenant": fb.tenant,
            "request_id": fb.request_id,
            "key_id": fb.key_id,
            "score": fb.score,
            "thumbs": fb.thumbs,
            "comment": None if fb.comment is None else fb.comment.replace("\x00", ""),
            "tags": orjson.dumps(list(fb.tags)).decode(),
            "ts": fb.ts,
        }
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.tenant == fb.tenant, t.c.request_id == fb.request_id))
            conn.execute(t.insert().values(**row))

    def get(self, tenant: str, request_id: str) -> Feedback | None:
        t = self.table
        stmt = select(t).where(t.c.tenant == tenant, t.c.request_id == request_id)
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _feedback(row._asdict())

    def since(self, since: float, tenant: str | None = None) -> list[Feedback]:
        """Feedback given at or after `since`, oldest first (of one tenant, if given)."""
        t = self.table
        stmt = select(t).where(t.c.ts >= since).order_by(t.c.ts)
        if tenant is not None:
            stmt = stmt.where(t.c.tenant == tenant)
        with self.engine.connect() as conn:
            return [_feedback(row._asdict()) for row in conn.execute(stmt)]


def _feedback(row: dict[str, object]) -> Feedback:
    tags = orjson.loads(str(row["tags"]))
    return Feedback(
        request_id=str(row["request_id"]),
        tenant=str(row["tenant"]),
        key_id=None if row["key_id"] is None else str(row["key_id"]),
        score=float(row["score"]),  # type: ignore[arg-type]
        thumbs=None if row["thumbs"] is None else str(row["thumbs"]),
        comment=None if row["comment"] is None else str(row["comment"]),
        tags=tuple(str(t) for t in tags),
        ts=float(row["ts"]),  # type: ignore[arg-type]
    )
