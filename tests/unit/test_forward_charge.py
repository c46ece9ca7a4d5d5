"""A forwarded item's result and its charge go together (h-forward-money): a stop that
cancels the collection while an item's result is being written still charges that item,
and results mapped twice are charged once. Fakes for the store and the provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

from sluice.batch.forward import Forwarder
from sluice.batch.model import Batch
from sluice.batch.store import BatchStore
from sluice.providers.batch_clients import BatchClient, BatchResult
from sluice.types import Usage


class Store:
    def __init__(self) -> None:
        self.results: dict[int, str] = {}
        self.writing = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.after_charge: Any = None
        self.ledger_url = None

    async def settle_charges(self, *_args: Any) -> int:
        return 0

    async def index_of(self, _batch_id: str) -> dict[str, int]:
        return {"a": 0, "b": 1}

    async def finish(
        self, _batch_id: str, idx: int, state: str, _result: Any, _charge: str | None
    ) -> bool:
        # Like the real store's worker thread: a cancelled caller does not stop the write.
        return await asyncio.shield(asyncio.ensure_future(self._write(idx, state)))

    async def _write(self, idx: int, state: str) -> bool:
        self.writing.set()
        await self.release.wait()
        if idx in self.results:
            return False
        self.results[idx] = state
        return True

    async def settle_unfinished(self, *_args: Any, **_kw: Any) -> None:
        return None


class Client:
    async def results(self, _provider_id: str) -> AsyncIterator[BatchResult]:
        for cid in ("a", "b"):
            yield BatchResult(cid, 200, {"ok": True}, None, Usage(3, 4))

    async def close(self) -> None:
        return None


def forwarder(store: Store, charged: list[int]) -> Forwarder:
    async def price(_batch: Batch, idx: int, _result: BatchResult) -> tuple[None, dict[str, Any]]:
        return None, {"idx": idx}  # no ledger here: the follow-up runs at once

    async def after(doc: dict[str, Any]) -> None:
        charged.append(doc["idx"])

    store.after_charge = after

    def make(_provider: str) -> BatchClient:
        return cast(BatchClient, Client())

    return Forwarder(cast(BatchStore, store), make, price, 0.1)


BATCH = cast(Batch, type("B", (), {"id": "batch_1"})())


async def test_a_stop_mid_write_still_charges_the_item() -> None:
    store, charged = Store(), list[int]()
    fw = forwarder(store, charged)
    store.release.clear()
    task = asyncio.ensure_future(fw._collect(BATCH, "p1", cast(BatchClient, Client())))
    await store.writing.wait()
    task.cancel()  # the gateway stops while item 0's result is being written
    await asyncio.sleep(0)
    store.release.set()
    await fw.close()  # waits for the item in hand
    for _ in range(5):  # (the write ends either way)
        await asyncio.sleep(0)
    assert store.results == {0: "succeeded"} and charged == [0]


async def test_results_mapped_twice_are_charged_once() -> None:
    store, charged = Store(), list[int]()
    fw = forwarder(store, charged)
    await fw._collect(BATCH, "p1", cast(BatchClient, Client()))
    await fw._collect(BATCH, "p1", cast(BatchClient, Client()))  # a poll after a restart
    await fw.close()
    assert charged == [0, 1]
