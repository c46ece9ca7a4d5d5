"""The record spool: a process killed with SIGKILL loses no call record — another process
(or the next start) replays its spool segments into the store, without duplicates."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from sluice.observe.sink import RecordSink
from sluice.observe.spool import Spool
from sluice.observe.store import RecordStore
from tests.governance_rig import postgres_schema

pytestmark = pytest.mark.integration

VICTIM = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from sluice.observe.records import CallRecord
    from sluice.observe.sink import RecordSink
    from sluice.observe.spool import Spool
    from sluice.observe.store import RecordStore

    async def main(url, spool_dir):
        store = RecordStore.open(url)
        sink = RecordSink(store, flush_interval_s=0.05, batch_size=50,
                          spool=Spool(spool_dir))
        await sink.start()
        for i in range(150):
            sink.emit(CallRecord(request_id=f"early-{i}", ts=1000.0 + i, route="r"))
        await asyncio.sleep(1.0)  # written, their segments deleted
        for i in range(150):
            sink.emit(CallRecord(request_id=f"late-{i}", ts=2000.0 + i, route="r"))
            if i == 120:
                await asyncio.sleep(0.06)  # some of them reach the store, some do not
        print("emitted", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no close(), no flush: kill -9

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


def victim(url: str, spool_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", VICTIM, url, str(spool_dir)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert b"emitted" in proc.stdout


def counts(url: str) -> tuple[int, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM call_records")).scalar_one()
        distinct = conn.execute(
            text("SELECT count(DISTINCT request_id) FROM call_records")
        ).scalar_one()
    engine.dispose()
    return int(total), int(distinct)


async def restart(url: str, spool_dir: Path) -> RecordSink:
    store = RecordStore.open(url)
    sink = RecordSink(store, flush_interval_s=0.05, spool=Spool(spool_dir))
    async with sink:
        await asyncio.sleep(0.3)  # the first tick replays orphans
    store.close()
    return sink


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_loses_no_record(tmp_path: Path, backend: str) -> None:
    spool_dir = tmp_path / "spool"

    def run(url: str) -> None:
        victim(url, spool_dir)
        before, _ = counts(url)
        assert before < 300  # the kill did lose records from the store...
        assert list(spool_dir.glob("*.jsonl"))  # ...but not from the spool
        sink = asyncio.run(restart(url, spool_dir))
        assert counts(url) == (300, 300)  # every record once, none twice
        assert sink.replayed == 300 - before
        assert not list(spool_dir.glob("*.jsonl"))

    if backend == "sqlite":
        run(f"sqlite:///{tmp_path / 'records.db'}")
    else:
        with postgres_schema() as url:
            run(url)
