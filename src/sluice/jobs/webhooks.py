"""Signed webhook delivery of finished jobs, retried with exponential backoff, logged.

The body is the job as `GET /v1/sluice/jobs/{id}` shows it, wrapped in an event:

    {"type": "job.succeeded" | "job.failed", "created_at": <epoch s>, "data": <job>}

Headers: `x-sluice-event`, `x-sluice-delivery` (job id + attempt), `x-sluice-timestamp`
and, when a secret is set (`jobs.webhooks.secret_env`), `x-sluice-signature: sha256=<hex>`
signed exactly as alert webhooks are (`sluice.observe.alerts.sign`: HMAC-SHA256 over
`<timestamp>.<body>`); receivers verify with `sluice.observe.alerts.verify_signature`.

Every attempt is written to the delivery log (`GET /v1/sluice/jobs/{id}/deliveries`):
status code or error, duration. A 2xx ends it; anything else (3xx too: redirects are
never followed) is retried after base·2^(n-1) seconds (capped) up to `max_attempts`. Each
attempt is one queue item and the next attempt a *delayed* queue item (`step`), so the
backoff waits in the queue, not in a worker slot: failing or hanging receivers cannot hold
the worker that also runs jobs and batch items. A worker killed around an attempt leaves
its item to another worker, which continues from the attempts already logged.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable

import aiohttp
import orjson

from sluice.jobs.config import JobWebhooksConfig
from sluice.jobs.ssrf import Policy, SafeResolver, WebhookRefused, check_url, refusal_reason
from sluice.jobs.store import JobRow, JobStore
from sluice.observe.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

log = logging.getLogger("sluice.jobs")
Sleep = Callable[[float], Awaitable[None]]


def event_body(job: JobRow) -> bytes:
    kind = "job.succeeded" if job.status == "succeeded" else "job.failed"
    return orjson.dumps({"type": kind, "created_at": time.time(), "data": job.public()})


class WebhookSender:
    def __init__(
        self, config: JobWebhooksConfig, store: JobStore, *, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.config = config
        self.store = store
        self.policy = Policy(config)
        secret = os.environ.get(config.secret_env) if config.secret_env else None
        self.secret = secret.encode() if secret else None
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self.delivered = 0
        self.failed = 0

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=SafeResolver(self.policy), limit=64)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
                trust_env=False,  # a proxy would resolve the host where we cannot judge it
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def backoff_s(self, attempt: int) -> float:
        return float(
            min(self.config.backoff_cap_s, self.config.backoff_base_s * 2 ** (attempt - 1))
        )

    async def deliver(self, job: JobRow) -> bool:
        """Attempts until one is accepted or `max_attempts` are logged, sleeping the backoff
        in between (a direct caller's loop; the queue's handler uses `step`)."""
        attempt = 1
        while (nxt := await self.step(job, attempt)) is not None:
            attempt, wait_s = nxt
            await self._sleep(wait_s)
        done = await self.store.deliveries(job.id)
        return any(d["ok"] for d in done) or not job.webhook_url

    async def step(self, job: JobRow, attempt: int) -> tuple[int, float] | None:
        """Make delivery attempt `attempt` unless the log shows it was made already (a
        worker died after it); return (next attempt, seconds to wait before it) or None
        when there is nothing more to do (delivered, or `max_attempts` used up). The wait
        is the caller's: the queue handler re-enqueues the next attempt delayed, so a
        receiver that fails or hangs never holds a worker slot through its backoff."""
        if not job.webhook_url:
            return None
        done = await self.store.deliveries(job.id)
        if any(d["ok"] for d in done):
            return None  # delivered before a crash: never twice on purpose
        made = len(done)
        if made >= self.config.max_attempts:
            return None
        if made >= attempt:  # this attempt was made before a crash: schedule the next
            return made + 1, self.backoff_s(made)
        attempt = made + 1
        if await self._attempt(job, event_body(job), attempt):
            self.delivered += 1
            return None
        if attempt >= self.config.max_attempts:
            self.failed += 1
            log.warning("job %s: webhook not delivered after %d attempts", job.id, attempt)
            return None
        return attempt + 1, self.backoff_s(attempt)

    async def _attempt(self, job: JobRow, body: bytes, attempt: int) -> bool:
        assert job.webhook_url is not None
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            url = await check_url(job.webhook_url, self.policy)
            stamp = str(int(time.time()))
            headers = {
                "content-type": "application/json",
                "user-agent": "sluice-webhooks",
                "x-sluice-event": orjson.loads(body)["type"],
                "x-sluice-delivery": f"{job.id}.{attempt}",
                TIMESTAMP_HEADER: stamp,
            }
            if self.secret is not None:
                headers[SIGNATURE_HEADER] = sign(body, self.secret, stamp)
            async with self.session().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                await resp.read()
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except WebhookRefused as exc:
            error = str(exc)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = refusal_reason(exc) or f"{type(exc).__name__}"
        duration_ms = (time.perf_counter() - started) * 1000
        await self.store.add_delivery(job.id, attempt, status, error, duration_ms)
        return error is None
