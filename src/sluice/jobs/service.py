"""Async jobs: a chat request accepted now, run later at JOB priority, its answer kept.

    service = JobService(config.jobs, JobStore(url), queue, execute)
    job = await service.submit(tenant=..., key_id=..., fmt="openai", request={...}, ...)
    queue.run(service.handlers, ...)      # the worker (web/jobs.py starts it with the app)

`execute(job) -> (http_status, body, held charge)` is injected from above (web/jobs.py runs the chat
body through the gateway's whole pipeline); this package never imports the gateway.

Life of a job: `queued` → `running` → `succeeded` | `failed` (or `cancelled` while still
queued). The queue is at-least-once, the result is written once (`JobStore.finish` only
moves a job that has not ended) together with its charge, which then goes to the spend
ledger exactly once (`JobStore.settle_charges`: after the result, again when a leftover
item finds the job ended — its worker died in between — and in the metrics refresh), and
a job that ended leaves exactly one webhook item (dedupe key `wh:<id>`; each retry is a
delayed item `wh:<id>:<attempt>`), also re-made when a worker died between the result and
the item.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sluice.jobs.config import JobsConfig
from sluice.jobs.ssrf import check_url
from sluice.jobs.store import TERMINAL, JobRow, JobStore, Status
from sluice.jobs.webhooks import WebhookSender
from sluice.queue import Handler, Job, Priority, Queue

log = logging.getLogger("sluice.jobs")

RUN = "job.run"
WEBHOOK = "job.webhook"
# (HTTP status, body, the run's held spend-ledger row or None: `sluice.state.charges`)
Execute = Callable[[JobRow], Awaitable[tuple[int, Any, str | None]]]

_INTERNAL = {"error": {"message": "internal error while running the job", "type": "api_error"}}


class JobService:
    def __init__(self, config: JobsConfig, store: JobStore, queue: Queue, execute: Execute):
        self.config = config
        self.store = store
        self.queue = queue
        self.execute = execute
        self.webhooks = WebhookSender(config.webhooks, store)
        self.completed = 0
        self.failed = 0

    @property
    def handlers(self) -> dict[str, Handler]:
        return {RUN: self._run, WEBHOOK: self._webhook}

    async def submit(
        self,
        *,
        tenant: str,
        key_id: str | None,
        fmt: str,
        request: dict[str, Any],
        metadata: dict[str, Any] | None = None,
        webhook_url: str | None = None,
    ) -> JobRow:
        """Store and enqueue a job; raises `WebhookRefused` for an unacceptable webhook."""
        if webhook_url is not None:
            await check_url(webhook_url, self.webhooks.policy)
        job = await self.store.create(
            tenant=tenant,
            key_id=key_id,
            fmt=fmt,
            request=request,
            metadata=metadata,
            webhook_url=webhook_url,
        )
        await self.queue.enqueue(
            RUN, {"job": job.id}, Priority.JOB, dedupe_key=f"job:{job.id}", group=job.id
        )
        return job

    async def cancel(self, job_id: str, tenant: str) -> JobRow | None:
        job = await self.store.cancel(job_id, tenant)
        if job is not None and job.status == "cancelled":
            await self.queue.cancel_group(job.id)
        return job

    async def _run(self, item: Job) -> None:
        job_id = str(item.payload.get("job"))
        job = await self.store.start_run(job_id)
        if job is None:  # ended already: a leftover item (a worker died after the result)
            await self.store.settle_charges(job_id)
            ended = await self.store.get(job_id)
            if ended is not None and ended.status != "cancelled":
                await self._queue_webhook(ended)
            return
        charge: str | None = None
        try:
            status, body, charge = await self.execute(job)
        except Exception:
            log.exception("job %s: unexpected error", job.id)
            status, body = 500, _INTERNAL
        final: Status = "succeeded" if status < 400 else "failed"
        if await self.store.finish(job.id, final, status, body, charge):
            await self.store.settle_charges(job.id)
            if final == "succeeded":
                self.completed += 1
            else:
                self.failed += 1
        ended = await self.store.get(job.id)
        if ended is not None:
            await self._queue_webhook(ended)

    async def _queue_webhook(self, job: JobRow) -> None:
        if job.webhook_url and job.status in TERMINAL:
            await self.queue.enqueue(
                WEBHOOK, {"job": job.id}, Priority.JOB, dedupe_key=f"wh:{job.id}"
            )

    async def _webhook(self, item: Job) -> None:
        job = await self.store.get(str(item.payload.get("job")))
        if job is None or job.status not in TERMINAL or job.status == "cancelled":
            return
        nxt = await self.webhooks.step(job, int(item.payload.get("attempt", 1)))
        if nxt is not None:  # the retry waits in the queue, not in this worker slot
            attempt, wait_s = nxt
            await self.queue.enqueue(
                WEBHOOK,
                {"job": job.id, "attempt": attempt},
                Priority.JOB,
                dedupe_key=f"wh:{job.id}:{attempt}",
                delay_s=wait_s,
            )

    async def close(self) -> None:
        await self.webhooks.close()
