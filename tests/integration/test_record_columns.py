"""The record store adds columns newer Sluice versions define to a table an older one made."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sluice.observe.records import CallRecord
from sluice.observe.store import RecordStore

pytestmark = pytest.mark.integration


def test_a_record_table_from_before_routing_gets_the_new_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    store = RecordStore.open(f"sqlite:///{db}")
    store.close()
    with sqlite3.connect(db) as conn:  # the table as an older Sluice made it
        conn.execute("ALTER TABLE call_records DROP COLUMN route_decision")
        conn.execute("ALTER TABLE call_records DROP COLUMN routing_saved_usd")
    store = RecordStore.open(f"sqlite:///{db}")
    store.write_batch([CallRecord(request_id="r1", route_decision="rules: x -> gpt-4o")])
    (record,) = store.query()
    store.close()
    assert record.route_decision == "rules: x -> gpt-4o"
