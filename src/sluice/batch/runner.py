"""`BatchRunner`: the background workers of run-mode batches, and their housekeeping.

Each gateway process runs one. A batch's items go into the durable work queue
(`sluice.queue`: SQLite embedded, pgqueuer on PostgreSQL) at the lowest priority, one
queue group per batch, deduplicated by (batch, line). The queue delivers each at least
once; the runner marks it running (`BatchStore.take`), runs it through the item runner it
was given — the gateway's whole pipeline, injected from `sluice.web.batch_run`, since this
package sits below the gateway — and writes each item's one result with its charge
(`BatchStore.finish`); housekeeping moves held charges into the spend ledger every round
(`BatchStore.settle_charges`; so does a redelivered item that has its result already: a
worker killed between the two). Throughput is capped twice:
by the app's queue worker (`queue.concurrency`, shared with async jobs, which it picks
first), and per model at most `share(model)` items in flight (a share of its
deployments' concurrency), so interactive calls keep their headroom.

Housekeeping (every `_HOUSEKEEP_S`) moves batches along: a cancelled batch's queue group
is dropped at once and its claimed items not started yet go back; its unstarted items
become `cancelled`
and it ends when its running items finish; a batch past its completion window has its
unfinished items `expired`; a batch with no work left is finalized — its output and error
files are built from the item rows (one line per custom_id) and stored in the `FileStore`.
Every step is a conditional transition, so replicas sharing the database never finalize
one batch twice, and a process killed mid-way leaves nothing another cannot finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from sluice.batch.config import BatchConfig
from sluice.batch.forward import Forwarder
from sluice.batch.model import Batch, Claim, Outcome, Status
from sluice.batch.store import CHARGE_SWEEP, BatchStore
from sluice.queue import Job, Priority, Queue

log = logging.getLogger("sluice.batch")

ItemRunner = Callable[[Claim], Awaitable[Outcome]]
_HOUSEKEEP_S = 0.5
_ENQUEUE_CHUNK = 1000
ITEM_KIND = "batch.item"
_RESUBMIT_S = 30.0
_CHARGE_PAGES = 20  # held charges settled per housekeeping round: 20 x CHARGE_SWEEP at most


class OutputFiles(Protocol):
    """Where finished batches' output goes (`sluice.files.store.FileStore` satisfies it)."""

    async def create(self, tenant: str, filename: str, purpose: str, data: bytes) -> Any: ...


class ItemObserver(Protocol):
    def item_done(self, state: str) -> None: ...

    def queue(self, pending: int, running: int, oldest: float | None) -> None: ...


class BatchRunner:
    def __init__(
        self,
        store: BatchStore,
        queue: Queue,
        files: OutputFiles | None,
        run_item: ItemRunner,
        config: BatchConfig,
        share: Callable[[str], int],
        observer: ItemObserver | None = None,
        forwarder: Forwarder | None = None,
    ) -> None:
        self.forwarder = forwarder
        self.store = store
        self.queue = queue
        self.files = files
        self.run_item = run_item
        self.config = config
        self.share = share
        self.observer = observer
        self._per_model: dict[str, asyncio.Semaphore] = {}
        self._stopped: set[str] = set()  # batches cancelled or ended: their items go back
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = 0
        self._resubmitted = time.monotonic()
        self._ready = asyncio.Event()

    async def start(self, work: bool = True) -> None:
        """(`work=False`: this process only takes batches in; workers elsewhere run them.)
        Housekeeping, after the items of batches still in progress are enqueued again
        (deduplicated by batch and line), so a batch whose process died between saving
        and enqueuing still runs. The queue's worker belongs to the app (`handle` is this
        runner's handler for `ITEM_KIND`); items it delivers before this start wait."""
        if not work:
            return
        for batch in await self.store.active():
            if batch.status == "in_progress" and batch.mode == "run":
                await self.submit(batch.id, await self.store.unfinished(batch.id))
        self._ready.set()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._housekeep_forever(), name="sluice-batch-housekeeping"),
        ]

    async def close(self) -> None:
        self._ready.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._tasks:  # the charges of the last results (else the next start's round)
            try:
                await self._settle_charges()
            except Exception:
                log.exception("held charges not settled at stop; the next start settles them")
        if self.forwarder is not None:
            await self.forwarder.close()

    async def submit(self, batch_id: str, items: list[int]) -> None:
        """Queue a batch's items at the lowest priority, one queue group per batch."""
        for start in range(0, len(items), _ENQUEUE_CHUNK):
            chunk = items[start : start + _ENQUEUE_CHUNK]
            await self.queue.enqueue_many(
                ITEM_KIND,
                [({"batch": batch_id, "idx": idx}, f"{batch_id}:{idx}") for idx in chunk],
                Priority.BATCH,
                group=batch_id,
            )

    async def cancel(self, batch_id: str) -> None:
        """No item of the batch starts from now on: waiting ones leave the queue, claimed
        ones not started yet go back; running ones finish (their results are kept)."""
        self._stopped.add(batch_id)
        await self.queue.cancel_group(batch_id)
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return self._running

    async def handle(self, job: Job) -> None:
        """The queue's handler for one batch item (at least once; the result once)."""
        await self._ready.wait()
        batch_id, idx = str(job.payload.get("batch", "")), int(job.payload.get("idx", -1))
        if batch_id in self._stopped:
            return
        claim = await self.store.take(batch_id, idx, self.config.lease_s)
        if claim is None:  # it has its result: its worker may have died before its charge
            await self.store.settle_charges(batch_id, idx)
        else:
            self._running += 1
            try:
                await self._item(claim)
            finally:
                self._running -= 1

    async def _housekeep_forever(self) -> None:
        while True:
            try:
                await self.housekeep()
            except asyncio.CancelledError:
                raise
            except Exception:  # fail open: a store hiccup must not end the housekeeping
                log.exception("batch housekeeping failed; retrying")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _HOUSEKEEP_S)

    async def _settle_charges(self) -> None:
        """Held charges of the results written since the last round (by this process or
        one that died) into the spend ledger, page by page."""
        for _ in range(_CHARGE_PAGES):
            if await self.store.settle_charges() < CHARGE_SWEEP:
                return

    def _semaphore(self, model: str) -> asyncio.Semaphore:
        sem = self._per_model.get(model)
        if sem is None:
            sem = self._per_model[model] = asyncio.Semaphore(max(1, self.share(model)))
        return sem

    async def _item(self, claim: Claim) -> None:
        try:
            outcome: Outcome | None
            if claim.attempt > self.config.max_attempts:
                outcome = _failed(claim, f"gave up after {claim.attempt - 1} attempts")
            else:
                outcome = await self._run(claim)
            if outcome is None:  # cancelled before it started
                await self.store.release(claim.batch_id, claim.idx)
                return
            state = "succeeded" if outcome.ok else "errored"
            result = {
                "status_code": outcome.status,
                "request_id": outcome.request_id,
                "body": outcome.body,
            }
            written = await self.store.finish(
                claim.batch_id, claim.idx, state, result, outcome.charge
            )
            if written and self.observer is not None:
                self.observer.item_done(state)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):  # shutting down: the queue redelivers it
                await asyncio.shield(self.store.release(claim.batch_id, claim.idx))
            raise
        except Exception:  # one item's failure is that item's error line
            log.exception("batch %s item %s failed", claim.batch_id, claim.idx)
            result = {
                "status_code": 500,
                "request_id": None,
                "body": {"error": {"message": "internal error", "type": "server_error"}},
            }
            with contextlib.suppress(Exception):
                await self.store.finish(claim.batch_id, claim.idx, "errored", result)

    async def _run(self, claim: Claim) -> Outcome | None:
        try:
            model = str(orjson.loads(claim.body).get("model", ""))
        except orjson.JSONDecodeError:
            model = ""
        async with self._semaphore(model):
            if claim.batch_id in self._stopped:
                return None
            return await self.run_item(claim)

    # --- housekeeping -------------------------------------------------------------------

    async def housekeep(self) -> None:
        now = time.time()
        if self.observer is not None:
            self.observer.queue(*await self.store.queue_stats())
        await self._settle_charges()
        resubmit = time.monotonic() - self._resubmitted >= _RESUBMIT_S
        if resubmit:  # an item the queue dropped (its handler failed) is queued again
            self._resubmitted = time.monotonic()
        for batch in await self.store.active():
            if batch.mode == "forward":
                await self._forwarded(batch)
            elif batch.status == "cancelling":
                if batch.id not in self._stopped:  # cancelled through another replica
                    await self.cancel(batch.id)
                await self._cancelling(batch, now)
            elif batch.status == "in_progress":
                if now >= batch.expires_at:
                    await self.cancel(batch.id)
                    await self.store.settle_unfinished(batch.id, "expired", running_too=True)
                    await self.finalize(batch, "expired")
                elif batch.counts.pending + batch.counts.running == 0:
                    await self.finalize(batch, "completed")
                elif resubmit:
                    await self.submit(batch.id, await self.store.unfinished(batch.id))
            elif batch.status == "finalizing":
                started = batch.times.get("finalizing_at", 0.0)
                if now - started > self.config.lease_s:  # its finalizer died: take over
                    await self.finalize(batch, _target(batch, now))

    async def _forwarded(self, batch: Batch) -> None:
        """A batch the provider runs: step it; finalize once every item has its result."""
        if batch.status in ("in_progress", "cancelling") and self.forwarder is not None:
            await self.forwarder.step(batch)
            if batch.counts.pending + batch.counts.running == 0 and batch.total:
                final: Status = "cancelled" if batch.status == "cancelling" else "completed"
                await self.finalize(batch, final)
        elif batch.status == "finalizing":
            started = batch.times.get("finalizing_at", 0.0)
            if time.time() - started > self.config.lease_s:
                await self.finalize(batch, _target(batch, time.time()))

    async def _cancelling(self, batch: Batch, now: float) -> None:
        await self.store.settle_unfinished(batch.id, "cancelled", running_too=False)
        since = batch.times.get("cancelling_at", now)
        stuck = now - since > self.config.lease_s  # running items of a dead worker
        if batch.counts.running == 0 or stuck:
            if stuck:
                await self.store.settle_unfinished(batch.id, "cancelled", running_too=True)
            await self.finalize(batch, "cancelled")

    async def finalize(self, batch: Batch, final: Status) -> None:
        if not await self.store.transition(batch.id, (batch.status,), "finalizing"):
            return  # another worker or replica is on it
        fields: dict[str, Any] = {}
        if batch.wire == "openai" and self.files is not None:
            output, errors = await self.store.in_thread(lambda: self._output_lines(batch.id))
            if output:
                made = await self.files.create(
                    batch.tenant, f"{batch.id}_output.jsonl", "batch_output", output
                )
                fields["output_file_id"] = made.id
            if errors:
                made = await self.files.create(
                    batch.tenant, f"{batch.id}_error.jsonl", "batch_output", errors
                )
                fields["error_file_id"] = made.id
        await self.store.transition(batch.id, ("finalizing",), final, **fields)
        self._stopped.discard(batch.id)
        log.info("batch %s %s", batch.id, final)

    def _output_lines(self, batch_id: str) -> tuple[bytes, bytes]:
        output: list[bytes] = []
        errors: list[bytes] = []
        for _idx, custom_id, state, result in self.store.iter_items(batch_id):
            line = openai_line(custom_id, state, result)
            (output if state == "succeeded" else errors).append(orjson.dumps(line))
        return _jsonl(output), _jsonl(errors)


def _jsonl(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n" if lines else b""


def _target(batch: Batch, now: float) -> Status:
    if "cancelling_at" in batch.times:
        return "cancelled"
    if now >= batch.expires_at:
        return "expired"
    return "completed"


def _failed(claim: Claim, message: str) -> Outcome:
    body = {"error": {"message": message, "type": "server_error", "code": "item_failed"}}
    return Outcome(500, body, "")


_UNRUN = {
    "cancelled": ("batch_cancelled", "the batch was cancelled before this request ran"),
    "expired": ("batch_expired", "the batch expired before this request completed"),
}


def openai_line(custom_id: str, state: str, result: dict[str, Any] | None) -> dict[str, Any]:
    """One line of an OpenAI batch output (or error) file."""
    line_id = "batch_req_" + secrets.token_hex(12)
    if result is None or state in _UNRUN:
        code, message = _UNRUN.get(state, ("batch_item_missing", "this request has no result"))
        return {
            "id": line_id,
            "custom_id": custom_id,
            "response": None,
            "error": {"code": code, "message": message},
        }
    return {"id": line_id, "custom_id": custom_id, "response": result, "error": None}


def anthropic_line(custom_id: str, state: str, result: dict[str, Any] | None) -> dict[str, Any]:
    """One line of an Anthropic Message Batch's results."""
    if state == "succeeded" and result is not None:
        return {"custom_id": custom_id, "result": {"type": "succeeded", "message": result["body"]}}
    if state in ("cancelled", "expired"):
        kind = "canceled" if state == "cancelled" else "expired"
        return {"custom_id": custom_id, "result": {"type": kind}}
    body = (result or {}).get("body") or {
        "type": "error",
        "error": {"type": "api_error", "message": "no result"},
    }
    return {"custom_id": custom_id, "result": {"type": "errored", "error": body}}
