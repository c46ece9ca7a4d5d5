"""Forward mode: a batch handed to the provider's own batch API (half price), polled, and
its results mapped back onto Sluice's items, so the caller sees the same objects, files
and results as in run mode.

The runner's housekeeping calls `Forwarder.step` for every active forwarded batch: it
submits the items once (a conditional write of the batch's provider state first, so two
replicas never both submit), polls every `forward_poll_s`, asks the provider to cancel
once when the caller cancels, and when the provider's batch has ended writes each
item's one result (`BatchStore.finish`, as in run mode) together with its charge: `price`
gives the item's spend-ledger row at the provider's batch price (`sluice.state.charges`),
carrying its call record and budget-counter charge as the follow-up that whoever settles
the charge runs (`BatchStore.after_charge`). `finish` is a conditional write, so results
mapped twice (a poll after a restart, two replicas) are recorded and charged once, and a
process killed between the result and the ledger leaves the charge held beside the result
for the next housekeeping round. Items the provider returned no line for end `errored`.
The provider's expiry is the batch's expiry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sluice.batch.model import Batch
from sluice.batch.store import BatchStore
from sluice.errors import UpstreamError
from sluice.providers.batch_clients import BatchClient, BatchItem, BatchResult

log = logging.getLogger("sluice.batch")

_CLOSE_WAIT_S = 10.0
# (the item's held charge, None when no spend ledger is kept; its follow-up, run directly then)
Price = Callable[[Batch, int, BatchResult], Awaitable[tuple[str | None, dict[str, Any]]]]


class Forwarder:
    def __init__(
        self,
        store: BatchStore,
        make_client: Callable[[str], BatchClient],
        price: Price,
        poll_s: float,
    ) -> None:
        self.store = store
        self.make_client = make_client
        self._clients: dict[str, BatchClient] = {}
        self.price = price
        self.poll_s = poll_s
        self._polled: dict[str, float] = {}
        self._items: set[asyncio.Future[None]] = set()

    def client_for(self, provider: str) -> BatchClient:
        client = self._clients.get(provider)
        if client is None:
            client = self._clients[provider] = self.make_client(provider)
        return client

    def _item_done(self, item: asyncio.Future[None]) -> None:
        self._items.discard(item)
        if not item.cancelled() and (exc := item.exception()) is not None:
            log.error("a forwarded item's result or charge failed: %r", exc)

    async def close(self) -> None:
        if self._items:  # items being written and charged finish first (see `_collect`)
            await asyncio.wait(set(self._items), timeout=_CLOSE_WAIT_S)
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def step(self, batch: Batch) -> None:
        state = batch.provider or {}
        client = self.client_for(str(state.get("provider", "")))
        try:
            if "id" not in state:
                await self._submit(batch, state, client)
                return
            if batch.status == "cancelling" and not state.get("cancel_sent"):
                await client.cancel(state["id"])
                await self.store.set_provider(batch.id, {**state, "cancel_sent": True}, state)
            now = time.monotonic()
            if now - self._polled.get(batch.id, 0.0) < self.poll_s:
                return
            self._polled[batch.id] = now
            status = await client.poll(state["id"])
            if status.done:
                await self._collect(batch, state["id"], client)
                self._polled.pop(batch.id, None)
        except UpstreamError as err:  # the provider is down or refused: try again later
            log.warning("forwarded batch %s: %s", batch.id, err.message)

    async def _submit(self, batch: Batch, state: dict[str, Any], client: BatchClient) -> None:
        claimed = {**state, "submitting": time.time()}
        if "submitting" in state or not await self.store.set_provider(batch.id, claimed, state):
            return  # another worker is submitting it
        items = await self.store.start_all(batch.id)
        upstream = state.get("upstream_model")
        bodies = [BatchItem(cid, {**body, "model": upstream}) for _idx, cid, body in items]
        try:
            provider_id = await client.submit(bodies, metadata={"sluice_batch": batch.id})
        except UpstreamError:
            await self.store.set_provider(batch.id, state, claimed)  # submit again later
            raise
        await self.store.set_provider(batch.id, {**state, "id": provider_id}, claimed)
        log.info("batch %s forwarded as %s", batch.id, provider_id)

    async def _finish_and_record(
        self, batch: Batch, idx: int, state: str, result: BatchResult, done: dict[str, Any]
    ) -> None:
        charge, after = await self.price(batch, idx, result)
        if not await self.store.finish(batch.id, idx, state, done, charge):
            return  # mapped before: recorded and charged by whoever wrote it
        if charge is None and self.store.after_charge is not None:  # no ledger kept: the
            await self.store.after_charge(after)  # call record now (else: housekeeping's)

    async def _collect(self, batch: Batch, provider_id: str, client: BatchClient) -> None:
        index = await self.store.index_of(batch.id)
        async for result in client.results(provider_id):
            idx = index.get(result.custom_id)
            if idx is None:
                continue
            if result.ok:
                state, status, body = "succeeded", 200, result.body
            elif result.status_code == 0:  # the provider expired or cancelled it
                kind = str((result.error or {}).get("type") or (result.error or {}).get("code"))
                state = "cancelled" if "cancel" in kind else "expired"
                status, body = 0, None
            else:
                state, status, body = "errored", result.status_code, {"error": result.error}
            if state in ("cancelled", "expired"):
                await self.store.finish(batch.id, idx, state, None)
            else:
                done = {"status_code": status, "request_id": f"{batch.id}-{idx}", "body": body}
                # Written and charged together: a stop cancelling the collection between
                # the two would leave a delivered item never charged (mapped again later,
                # its result is already written, so it would never be charged at all).
                item = asyncio.ensure_future(
                    self._finish_and_record(batch, idx, state, result, done)
                )
                self._items.add(item)
                item.add_done_callback(self._item_done)
                await asyncio.shield(item)
        # Items the provider said nothing about end errored (never silently missing).
        await self.store.settle_unfinished(batch.id, "errored", running_too=True)
