"""Finding a call's record by request id, for feedback (tenant check) and cost look-ups."""

from __future__ import annotations

from sqlalchemy import select

from sluice.observe.records import FIELD_NAMES, CallRecord
from sluice.observe.store import RecordStore


def find_call(store: RecordStore, request_id: str, tenant: str | None = None) -> CallRecord | None:
    """The `kind="call"` record with this request id (the newest, should ids repeat: a caller
    may send its own `x-sluice-request-id`), or None. Blocking: run in a thread.
    With `tenant`, only that tenant's records count: another tenant reusing the id can
    neither hide a call from its owner nor reveal that the id exists."""
    t = store.table
    where = [t.c.request_id == request_id, t.c.kind == "call"]
    if tenant is not None:
        where.append(t.c.tenant == tenant)
    stmt = (
        select(*(t.c[name] for name in FIELD_NAMES)).where(*where).order_by(t.c.ts.desc()).limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else CallRecord.from_json(row._asdict())
