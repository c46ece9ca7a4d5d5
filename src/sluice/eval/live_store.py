"""Shadow pairs and online scores in SQLite or PostgreSQL, beside the call records.

Two tables in the records store's database (`observability.records.store_url`), like the
feedback and eval-result tables: `sluice_shadow_pairs` (one row per mirrored call: the
production answer, the candidate's answer or error, both latencies) and
`sluice_online_scores` (one row per judged call: the 0-1 score, the 1-5 verdict, the
reason, the judge call's request id). Answers are cut to `live.MAX_TEXT_CHARS`.

Synchronous, blocking I/O (SQLAlchemy Core): the live workers call it through
`asyncio.to_thread`; the CLI and the dashboard read it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Table, func, select
from sqlalchemy.exc import IntegrityError

from sluice.eval.feedback_store import make_engine
from sluice.state import engines, migrations, tables

PAIRS = tables.SHADOW_PAIRS_TABLE
SCORES = tables.ONLINE_SCORES_TABLE


@dataclass(frozen=True, slots=True)
class ShadowPair:
    request_id: str
    route: str
    candidate: str
    question: str
    production: str
    candidate_output: str | None
    production_ms: float
    candidate_ms: float
    error: str | None


class LiveStore:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.pairs = tables.shadow_pairs
        self.scores = tables.online_scores

    @classmethod
    def open(cls, url: str) -> LiveStore:
        """A store whose tables exist (Alembic branch `eval`, sluice.state.migrations)."""
        migrations.upgrade(url, "eval")
        return cls(url)

    def close(self) -> None:
        engines.release(self.engine)

    def put_pair(self, row: Mapping[str, Any]) -> bool:
        return self._put(self.pairs, row, ("request_id", "candidate"))

    def put_score(self, row: Mapping[str, Any]) -> bool:
        return self._put(self.scores, row, ("request_id",))

    def _put(self, table: Table, row: Mapping[str, Any], key: tuple[str, ...]) -> bool:
        """Store `row`, replacing the same tenant's row of the same key (a retried call).
        A caller may choose its request id (`x-sluice-request-id`), so another tenant's row
        under the same key is kept and `row` is not stored: False."""
        # Any text may come from a caller or a model: PostgreSQL text holds no NUL.
        row = {k: v.replace("\x00", "") if isinstance(v, str) else v for k, v in row.items()}
        same_key = [table.c[k] == row[k] for k in key]
        tenant = row.get("tenant")
        try:
            return self._replace(table, row, same_key, tenant)
        except IntegrityError:  # another tenant's row, inserted at the same moment
            return False

    def _replace(
        self, table: Table, row: Mapping[str, Any], same_key: list[Any], tenant: Any
    ) -> bool:
        with self.engine.begin() as conn:
            conn.execute(
                table.delete().where(
                    *same_key,
                    table.c.tenant.is_(None) if tenant is None else table.c.tenant == tenant,
                )
            )
            if conn.execute(select(func.count()).select_from(table).where(*same_key)).scalar():
                return False  # another tenant's
            conn.execute(table.insert().values(**row))
        return True

    def pairs_since(
        self, since: float, route: str | None = None, limit: int = 1000
    ) -> list[ShadowPair]:
        t = self.pairs
        stmt = select(t).where(t.c.ts >= since).order_by(t.c.ts).limit(limit)
        if route is not None:
            stmt = stmt.where(t.c.route == route)
        with self.engine.connect() as conn:
            rows = [r._asdict() for r in conn.execute(stmt)]
        return [
            ShadowPair(
                request_id=r["request_id"],
                route=r["route"],
                candidate=r["candidate"],
                question=r["question"],
                production=r["production"],
                candidate_output=r["candidate_output"],
                production_ms=r["production_ms"],
                candidate_ms=r["candidate_ms"],
                error=r["error"],
            )
            for r in rows
        ]

    def shadow_stats(self, since: float) -> list[dict[str, Any]]:
        """Per (route, candidate): pairs, candidate errors, mean latencies."""
        t = self.pairs
        stmt = (
            select(
                t.c.route,
                t.c.candidate,
                func.count().label("pairs"),
                func.count(t.c.error).label("errors"),
                func.avg(t.c.production_ms).label("production_ms"),
                func.avg(t.c.candidate_ms).label("candidate_ms"),
            )
            .where(t.c.ts >= since)
            .group_by(t.c.route, t.c.candidate)
            .order_by(t.c.route, t.c.candidate)
        )
        with self.engine.connect() as conn:
            return [r._asdict() for r in conn.execute(stmt)]

    def quality(self, since: float) -> list[dict[str, Any]]:
        """Per (route, model): judged calls, mean score (0-1), share scored 4 or 5."""
        t = self.scores
        stmt = (
            select(
                t.c.route,
                t.c.model,
                func.count().label("judged"),
                func.avg(t.c.score).label("mean_score"),
                func.sum((t.c.verdict >= 4).cast(Integer)).label("good"),
            )
            .where(t.c.ts >= since)
            .group_by(t.c.route, t.c.model)
            .order_by(t.c.route, t.c.model)
        )
        with self.engine.connect() as conn:
            rows = [r._asdict() for r in conn.execute(stmt)]
        for r in rows:
            r["mean_score"] = float(r["mean_score"]) if r["mean_score"] is not None else None
            r["good_rate"] = (int(r.pop("good") or 0) / r["judged"]) if r["judged"] else None
        return rows
