"""An item stopped (the batch expired or was cancelled) while its call ran: no result is
kept, but the call was made, so its held charge still reaches the spend ledger, once."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from sluice.batch.model import Batch, NewItem
from sluice.batch.store import BatchStore
from sluice.governance.ledger import LedgerRow
from sluice.state import charges, engines
from sluice.state.tables import spend_ledger

pytestmark = pytest.mark.integration


def _charge(idx: int, tokens: int) -> str:
    row = LedgerRow(
        1.0, f"b-{idx}", "t", "k1", None, None, None, "m", "d", tokens, 2, Decimal("0.00001")
    )
    return charges.encode(row, f"batch:b:{idx}")


def _ledger(url: str) -> list[tuple[str | None, int]]:
    engine = engines.acquire(url)
    try:
        with engine.connect() as conn:
            t = spend_ledger.c
            stmt = sa.select(t.once_key, t.input_tokens).order_by(t.once_key)
            return [(r[0], r[1]) for r in conn.execute(stmt)]
    finally:
        engines.release(engine)


@pytest.mark.parametrize("stop", ["expired", "cancelled"])
async def test_an_item_stopped_mid_call_is_still_charged_once(tmp_path: Path, stop: str) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = BatchStore(f"sqlite:///{tmp_path / 'batch.db'}", ledger_url=ledger_url)
    await store.start()
    try:
        now = time.time()
        batch = Batch("b", "t", "openai", "run", "/v1/chat/completions", "in_progress", "24h",
                      now, now + 3600, 3)  # fmt: skip
        items = [NewItem(n, f"c{n}", {"model": "m", "messages": []}) for n in (1, 2, 3)]
        await store.create(batch, {}, items)
        # item 1 finishes before the stop; items 2 and 3 are running when it comes
        for n in (1, 2, 3):
            assert await store.take("b", n, 60) is not None
        assert await store.finish("b", 1, "succeeded", {"ok": 1}, _charge(1, 10))
        await store.settle_unfinished("b", stop, running_too=True)
        # their calls end after the stop: results dropped, charges kept
        assert not await store.finish("b", 2, "succeeded", {"ok": 2}, _charge(2, 20))
        assert not await store.finish("b", 3, "succeeded", {"ok": 3}, _charge(3, 30))
        # a late duplicate of items 1 and 2 (a redelivery) adds nothing
        assert not await store.finish("b", 1, "succeeded", {"ok": 1}, _charge(1, 99))
        assert not await store.finish("b", 2, "succeeded", {"ok": 2}, _charge(2, 99))
        await store.settle_charges()
        await store.settle_charges()
        assert _ledger(ledger_url) == [("batch:b:1", 10), ("batch:b:2", 20), ("batch:b:3", 30)]
        states = {n: s for n, _, s, _ in await store.items("b")}
        assert states == {1: "succeeded", 2: stop, 3: stop}
    finally:
        await store.close()
