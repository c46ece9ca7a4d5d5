"""`per_worker_problems`: every spelling of an in-memory SQLite store is refused for N > 1."""

from __future__ import annotations

import json

import pytest

from sluice.config import parse_config
from sluice.workers import per_worker_problems


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://"])
def test_an_in_memory_records_store_is_per_worker(url: str) -> None:
    config = parse_config(json.dumps({"observability": {"records": {"store_url": url}}}))
    assert any("in-memory SQLite" in p for p in per_worker_problems(config))


def test_a_sqlite_file_is_shared() -> None:
    config = parse_config(
        json.dumps({"observability": {"records": {"store_url": "sqlite:///x.db"}}})
    )
    assert not any("in-memory SQLite" in p for p in per_worker_problems(config))
