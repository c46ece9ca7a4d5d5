"""Eval results in SQLite or PostgreSQL: table `sluice_eval_results`, one row per (run,
target, item), in the records store's database (`sluice eval run --store URL`), so runs can
be listed and compared later (`sluice eval runs`) and joined to the call records by request
id. Synchronous (SQLAlchemy Core); the CLI calls it outside any event loop.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import select

from sluice.eval.feedback_store import make_engine
from sluice.eval.runner import ItemResult
from sluice.state import engines, migrations, tables

TABLE = tables.EVAL_RESULTS_TABLE
_ROWS_PER_INSERT = 500


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: str
    dataset: str
    target: str
    ts: float
    items: int
    mean_score: float
    pass_rate: float

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "target": self.target,
            "ts": self.ts,
            "items": self.items,
            "mean_score": self.mean_score,
            "pass_rate": self.pass_rate,
        }


class EvalResultStore:
    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.table = tables.eval_results

    @classmethod
    def open(cls, url: str) -> EvalResultStore:
        """A store whose table exists (Alembic branch `eval`, sluice.state.migrations)."""
        migrations.upgrade(url, "eval")
        return cls(url)

    def close(self) -> None:
        engines.release(self.engine)

    def save(self, run_id: str, dataset: str, results: Sequence[ItemResult]) -> None:
        """Every result of one run, in one transaction."""
        now = time.time()
        rows = [
            {
                "run_id": run_id,
                "target": r.target,
                "item_id": r.item_id,
                "dataset": _text(dataset)[:512],
                "ts": now + i * 1e-6,  # keeps the run's order (the first target: baseline)
                "score": r.score,
                "passed": r.passed,
                "scores": orjson.dumps(r.scores).decode(),
                "request_id": r.request_id,
                "latency_ms": r.latency_ms,
                "cost_usd": None if r.cost_usd is None else format(r.cost_usd, "f"),
                "cost_source": r.cost_source,
                "error": None if r.error is None else _text(r.error),
                "output": None if r.output is None else _text(r.output),
            }
            for i, r in enumerate(results)
        ]
        with self.engine.begin() as conn:
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                conn.execute(self.table.insert(), rows[start : start + _ROWS_PER_INSERT])

    def runs(self, limit: int = 20) -> list[RunSummary]:
        """The newest runs' per-target summaries, newest first."""
        t = self.table
        stmt = select(t.c.run_id, t.c.dataset, t.c.target, t.c.ts, t.c.score, t.c.passed)
        groups: dict[tuple[str, str], list[Any]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(stmt.order_by(t.c.ts.desc())):
                groups.setdefault((row.run_id, row.target), []).append(row)
        out = []
        for (run_id, target), rows in groups.items():
            out.append(
                RunSummary(
                    run_id=run_id,
                    dataset=rows[0].dataset,
                    target=target,
                    ts=rows[0].ts,
                    items=len(rows),
                    mean_score=sum(r.score for r in rows) / len(rows),
                    pass_rate=sum(bool(r.passed) for r in rows) / len(rows),
                )
            )
        out.sort(key=lambda s: (-s.ts, s.run_id, s.target))
        run_ids = list(dict.fromkeys(s.run_id for s in out))[:limit]
        keep = set(run_ids)
        return [s for s in out if s.run_id in keep]

    def load(self, run_id: str) -> tuple[str, list[ItemResult]] | None:
        """A saved run's dataset and results, in the order they were saved; None if unknown."""
        t = self.table
        stmt = select(t).where(t.c.run_id == run_id).order_by(t.c.ts)
        with self.engine.connect() as conn:
            rows = [r._asdict() for r in conn.execute(stmt)]
        if not rows:
            return None
        results = [
            ItemResult(
                item_id=r["item_id"],
                target=r["target"],
                output=r["output"],
                scores={str(k): float(v) for k, v in orjson.loads(r["scores"]).items()},
                score=float(r["score"]),
                passed=bool(r["passed"]),
                request_id=r["request_id"],
                latency_ms=float(r["latency_ms"]),
                cost_usd=None if r["cost_usd"] is None else Decimal(r["cost_usd"]),
                cost_source=r["cost_source"],
                error=r["error"],
            )
            for r in rows
        ]
        return str(rows[0]["dataset"]), results


def _text(value: str) -> str:
    """A model's output or an error may hold NUL, which PostgreSQL text cannot."""
    return value.replace("\x00", "")
