"""The record sink writing to real databases: a SQLite file and the local PostgreSQL.

Records go through `RecordSink` (batched, off the event loop) into `RecordStore`; the test
then reads them back and checks every aggregate against sums computed from the records
themselves. PostgreSQL is the one at postgresql+psycopg://postgres@127.0.0.1:5432/test
(override with SLUICE_TEST_POSTGRES_URL); each run uses its own table and drops it.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.exc import OperationalError

from sluice.observe.records import CACHE_HITS, CallRecord
from sluice.observe.sink import RecordSink
from sluice.observe.store import GROUP_BY_COLUMNS, RecordStore, percentile

pytestmark = pytest.mark.integration

PG_URL = os.environ.get(
    "SLUICE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_unreachable() -> str | None:
    engine = sqlalchemy.create_engine(PG_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
    except OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    finally:
        engine.dispose()
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RecordStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'sluice.db'}"
    else:
        reason = _pg_unreachable()
        if reason is not None:
            pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {reason}")
        url = PG_URL
    s = RecordStore.open(url, table_name=f"call_records_t{uuid.uuid4().hex[:10]}")
    try:
        yield s
    finally:
        s.drop_schema()
        s.close()


def make_records(n: int, seed: int = 7) -> list[CallRecord]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cache = rng.choice(["miss", "miss", "exact", "semantic", "bypass", None])
        status = rng.choice([200] * 8 + [429, 500, 502])
        read = rng.choice([0, 0, 256, 1024])
        write = rng.choice([0, 0, 128])
        out.append(
            CallRecord(
                request_id=f"req-{i}",
                trace_id=uuid.uuid4().hex,
                ts=1_700_000_000.0 + i * 0.5,
                tenant=rng.choice(["acme", "globex"]),
                key_id=rng.choice(["k1", "k2"]),
                user_id=rng.choice(["alice", "bob", "carol", None]),
                feature=rng.choice(["search", "chat", "summarise"]),
                route=rng.choice(["fast", "smart"]),
                model_requested=rng.choice(["gpt-4o-mini", "claude-haiku"]),
                deployment=rng.choice(["openai-mini", "anthropic-haiku", "anthropic-sonnet"]),
                provider=rng.choice(["openai", "anthropic"]),
                attempts=rng.choice([1, 1, 1, 2, 3]),
                fallback_triggered=rng.random() < 0.1,
                cache_status=cache,  # type: ignore[arg-type]
                cache_similarity=rng.random() if cache == "semantic" else None,
                stream=rng.random() < 0.5,
                input_tokens=read + write + rng.randint(1, 4000),
                output_tokens=rng.randint(0, 800),
                cache_read_tokens=read,
                cache_write_tokens=write,
                cost_usd=None if rng.random() < 0.05 else Decimal(rng.randint(0, 10**8)) / 10**10,
                cost_saved_usd=Decimal(rng.randint(0, 10**6)) / 10**10,
                latency_ms=rng.uniform(20, 30_000),
                ttft_ms=rng.uniform(5, 2_000) if rng.random() < 0.8 else None,
                finish_reason="stop" if status == 200 else None,
                status=status,
                error_type=None if status == 200 else "upstream_error",
                input_preview="hello [email]",
            )
        )
        if out[-1].attempts > 1:  # one attempt row per failed try: must not be counted
            out.append(
                CallRecord(
                    request_id=f"req-{i}-a1",
                    attempt_of=f"req-{i}",
                    kind="attempt",
                    ts=out[-1].ts,
                    user_id=out[-1].user_id,
                    route=out[-1].route,
                    deployment="openai-mini",
                    input_tokens=999_999,
                    cost_usd=Decimal(1),
                    latency_ms=1.0,
                    status=503,
                )
            )
    return out


def expected_aggregates(
    records: Sequence[CallRecord], group_by: str, since: float
) -> dict[str | None, dict[str, object]]:
    groups: dict[str | None, list[CallRecord]] = {}
    for r in records:
        if r.kind == "call" and r.ts >= since:
            groups.setdefault(getattr(r, group_by), []).append(r)
    out: dict[str | None, dict[str, object]] = {}
    for key, rs in groups.items():
        lat = sorted(r.latency_ms for r in rs)
        ttft = sorted(r.ttft_ms for r in rs if r.ttft_ms is not None)
        out[key] = {
            "calls": len(rs),
            "errors": sum(r.status >= 400 for r in rs),
            "input_tokens": sum(r.input_tokens for r in rs),
            "output_tokens": sum(r.output_tokens for r in rs),
            "cache_read_tokens": sum(r.cache_read_tokens for r in rs),
            "cache_write_tokens": sum(r.cache_write_tokens for r in rs),
            "cost_usd": sum((r.cost_usd for r in rs if r.cost_usd is not None), Decimal(0)),
            "cost_saved_usd": sum(
                (r.cost_saved_usd for r in rs if r.cost_saved_usd is not None), Decimal(0)
            ),
            "unpriced_calls": sum(r.cost_usd is None for r in rs),
            "cache_hit_rate": sum(r.cache_status in CACHE_HITS for r in rs) / len(rs),
            "latency_ms_p50": percentile(lat, 50),
            "latency_ms_p95": percentile(lat, 95),
            "latency_ms_p99": percentile(lat, 99),
            "ttft_ms_p50": percentile(ttft, 50),
            "ttft_ms_p95": percentile(ttft, 95),
            "ttft_ms_p99": percentile(ttft, 99),
        }
    return out


async def test_sink_writes_everything_and_aggregates_add_up(store: RecordStore) -> None:
    records = make_records(1500)
    sink = RecordSink(store, batch_size=200, flush_interval_s=0.05)
    await sink.start()
    for i, r in enumerate(records):
        sink.emit(r)
        if i % 300 == 0:
            await asyncio.sleep(0)  # let the writer run while emitting goes on
    await sink.close()
    stats = sink.stats()
    assert (stats.emitted, stats.written, stats.dropped, stats.write_errors) == (
        len(records),
        len(records),
        0,
        0,
    )

    back = await asyncio.to_thread(store.query)
    assert sorted(back, key=lambda r: (r.ts, r.kind, r.request_id)) == sorted(
        records, key=lambda r: (r.ts, r.kind, r.request_id)
    )

    since = records[len(records) // 3].ts
    for group_by in GROUP_BY_COLUMNS:
        got = await asyncio.to_thread(store.aggregate, since, group_by)  # type: ignore[arg-type]
        want = expected_aggregates(records, group_by, since)
        assert {g["group"] for g in got} == set(want)
        for g in got:
            w = want[g["group"]]
            for name, expected in w.items():
                actual = g[name]  # type: ignore[literal-required]
                if isinstance(expected, float):
                    assert actual == pytest.approx(expected), (group_by, g["group"], name)
                else:
                    assert actual == expected, (group_by, g["group"], name)
        assert sum(g["calls"] for g in got) == sum(
            1 for r in records if r.kind == "call" and r.ts >= since
        )


class BlockingStore:
    """The real store, with its first write held until released."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store
        self.entered = threading.Event()
        self.release = threading.Event()

    def write_batch(self, records: Sequence[CallRecord]) -> None:
        self.entered.set()
        self.release.wait(10)
        self.store.write_batch(records)


async def test_full_buffer_drops_and_counts_without_blocking(store: RecordStore) -> None:
    records = make_records(1200, seed=3)
    records = [r for r in records if r.kind == "call"][:1050]
    slow = BlockingStore(store)
    sink = RecordSink(slow, max_buffer=100, batch_size=50, flush_interval_s=60)
    await sink.start()
    for r in records[:50]:
        sink.emit(r)
    assert await asyncio.to_thread(slow.entered.wait, 5)  # writer is stuck in the database
    started = time.perf_counter()
    for r in records[50:]:
        sink.emit(r)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.05, f"1000 emits took {elapsed * 1000:.1f} ms"
    assert sink.stats().dropped == 900 and sink.stats().buffered == 100
    slow.release.set()
    await sink.close()
    stats = sink.stats()
    assert (stats.emitted, stats.written, stats.dropped) == (1050, 150, 900)
    stored = await asyncio.to_thread(store.query)
    assert [r.request_id for r in stored] == [r.request_id for r in records[:150]]


def test_text_that_copy_and_sql_escape_round_trips(store: RecordStore) -> None:
    """PostgreSQL writes with COPY, SQLite with INSERT: tabs, newlines, backslashes, quotes,
    `\\N` (COPY's null marker) and non-ASCII text come back exactly, None stays None."""
    tricky = ["a\tb", "line1\nline2\r\n", "back\\slash \\N", "\\N", "quote ' \" ;", "é ✓ 日本", ""]
    records = [
        CallRecord(
            request_id=f"esc-{i}",
            ts=1_700_000_000.0 + i,
            input_preview=text,
            output_preview=None,
            user_id=text or None,
            cost_usd=Decimal("0.0000001234"),
            fallback_triggered=i % 2 == 0,
            stream=True,
        )
        for i, text in enumerate(tricky)
    ]
    store.write_batch(records)
    store.write_batch([])  # nothing to write is not an error
    assert store.query() == records
