"""Exactly-once charges for work run off the request path: batch items, async jobs.

The work queue runs such work at least once, so its spend-ledger row cannot be written the
way an interactive call's is (queued as the call settles): a worker killed after the call
but before the result is kept would leave a charge for an answer nobody gets, and the run
that follows would add a second one. Instead the pipeline hands the row back to the caller
(`CallContext.hold_charge`); the batch or job store writes it, as a JSON `charge` column, in
the one transaction that writes the item's result (no result: no charge; a result: its
charge is durable with it); then `write` copies due charges into `sluice_spend_ledger`,
keyed by `once_key` (a unique column), and the store clears them. A crash between the two,
a sweep after a restart, two replicas sweeping at once: the second write of a key is a
no-op. So every kept result is charged exactly once, in whichever database the ledger is.

A forwarded batch item (run by the provider's batch API, no pipeline) gets its row from
`GovernanceStage.ledger_row` the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite

from sluice.state.tables import spend_ledger

log = logging.getLogger("sluice.limits")
_COLUMNS = frozenset(c.name for c in spend_ledger.columns) - {"id"}


def encode(row: Any, once_key: str, after: dict[str, Any] | None = None) -> str:
    """A ledger row (a dataclass with the ledger's columns) as the JSON kept beside a
    result until the ledger has it; `after`: what its writer does once it is there (a
    forwarded item's call record and budget counters)."""
    doc = {
        k: (str(v) if isinstance(v, Decimal) else v)
        for k, v in dataclasses.asdict(row).items()
        if k in _COLUMNS
    }
    doc["once_key"] = once_key
    return orjson.dumps({"ledger": doc, "after": after}).decode()


def held(rows: Sequence[Any], once_key: str) -> str | None:
    """The row a call's pipeline held back (`CallContext.hold_charge`), encoded to be kept
    with its result; None when it held none (no ledger is kept, or the call never reached
    the limits stage). A call settles once; were there more, the first is the charge."""
    if len(rows) > 1:
        log.error("a held call settled %d times; its first row is charged", len(rows))
    return encode(rows[0], once_key) if rows else None


def decode(text: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the ledger row's values, its `after`) of a held charge."""
    held = orjson.loads(text)
    doc = held.get("ledger") if isinstance(held, dict) else None
    if not isinstance(doc, dict) or not isinstance(doc.get("once_key"), str):
        raise ValueError("a held charge has no ledger row with a once_key")
    cost = doc.get("cost_usd")
    doc["cost_usd"] = None if cost is None else Decimal(str(cost))
    after = held.get("after")
    return {k: v for k, v in doc.items() if k in _COLUMNS}, after if isinstance(
        after, dict
    ) else None


def write(engine: Engine, charges: Sequence[str]) -> int:
    """Insert held charges into the spend ledger; a key already there is skipped. Returns
    the rows inserted now (blocking: call in a thread)."""
    rows = [decode(c)[0] for c in charges]
    if not rows:
        return 0
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    if engine.dialect.name not in ("postgresql", "sqlite"):
        raise ValueError(f"the spend ledger needs SQLite or PostgreSQL, not {engine.dialect.name}")
    stmt = (
        dialect.insert(spend_ledger)
        .on_conflict_do_nothing(index_elements=["once_key"])
        .returning(spend_ledger.c.once_key)  # only the rows inserted now
    )
    with engine.begin() as conn:
        return len(conn.execute(stmt, rows).all())
