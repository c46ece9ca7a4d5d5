"""Idempotency stage: a retried call with the same key gets the first call's answer.

A caller marks a call with `Idempotency-Key: <key>` (or `x-sluice-idempotency-key`). The
first call with a key claims it atomically (`add`, set-if-absent: safe across gateway
processes sharing Redis) with a *pending* record holding a fingerprint of the request body;
it then runs and stores its final answer under the key for `ttl_s`. Later calls with the key:

- same body, answer stored → the stored answer (same id, text, tool calls, usage), with
  `x-sluice-idempotent-replay: true`, as a stream when the call streams;
- same body, first call still running → wait (polling, at most `max_wait_s`) and replay;
  still running after that → 409 `idempotency_key_in_progress`;
- another body → 422 `idempotency_key_reused`.

The pending claim is a lease: it lives `lease_s` and is renewed every `lease_s / 3` while
the first call runs (compare-and-extend, so a renewal never touches a stored answer). A
process killed mid-call stops renewing: a retry on another replica takes the key over
within `lease_s` (before: it waited `max_wait_s` and got a 409).

If the first call fails (or its stream is cut), the pending record is deleted so that a retry
runs again. Keys are per tenant. If the backend itself fails, the call goes on without
idempotency (logged and counted) rather than failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from sluice.cache.backends import CacheBackend, response_from_json, response_to_json
from sluice.cache.exact import tenant_of
from sluice.cache.key import cache_key
from sluice.collect import WatchedStream
from sluice.config import IdempotencyConfig
from sluice.errors import SluiceError, UnprocessableError
from sluice.pipeline.context import CallContext, Handler, Result
from sluice.replay import events_from_response
from sluice.types import ChatRequest, ChatResponse

log = logging.getLogger("sluice.cache")

HEADERS = ("idempotency-key", "x-sluice-idempotency-key")
REPLAY_HEADER = "x-sluice-idempotent-replay"
KEY_PREFIX = "idem:"
_RECORD_VERSION = 1
_MAX_KEY_LEN = 255


class IdempotencyKeyReusedError(UnprocessableError):
    default_code = "idempotency_key_reused"


class IdempotencyInProgressError(SluiceError):
    status: ClassVar[int] = 409
    default_code: ClassVar[str | None] = "idempotency_key_in_progress"


@dataclass(slots=True)
class IdempotencyStats:
    first: int = 0  # calls that claimed a key and ran
    replays: int = 0
    waits: int = 0  # duplicates that found the first call still running
    conflicts: int = 0  # key reused with another body
    released: int = 0  # first calls that failed and gave the key back
    errors: int = 0  # backend failures and unreadable records


@dataclass(slots=True)
class _Record:
    fingerprint: str
    response: ChatResponse | None  # None while the first call is running


def idempotency_key(req: ChatRequest) -> str | None:
    headers = req.meta.headers
    for name in HEADERS:
        value = headers.get(name)
        if value:
            return value.strip() or None
    return None


class IdempotencyStage:
    def __init__(
        self,
        config: IdempotencyConfig,
        backend: CacheBackend,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.backend = backend
        self.stats = IdempotencyStats()
        self._clock = clock

    async def __call__(self, ctx: CallContext, nxt: Handler) -> Result:
        req = ctx.request
        given = idempotency_key(req) if self.config.enabled else None
        if given is None:
            return await nxt(ctx)
        if len(given) > _MAX_KEY_LEN:
            raise UnprocessableError(
                f"Idempotency-Key is {len(given)} characters; at most {_MAX_KEY_LEN} allowed",
                code="idempotency_key_invalid",
            )
        tenant = tenant_of(ctx)
        try:
            fingerprint = cache_key(req, tenant, "idem")
        except (TypeError, ValueError):
            log.warning("request %s: no idempotency fingerprint", req.meta.request_id)
            return await nxt(ctx)
        key = KEY_PREFIX + hashlib.sha256(f"{tenant}\0{given}".encode()).hexdigest()
        pending = _encode(fingerprint, None)
        deadline = self._clock() + self.config.max_wait_s
        pause = min(0.005, self.config.poll_interval_s)
        waited = False
        while True:
            try:
                claimed = await self.backend.add(key, pending, self._lease_s())
                blob = None if claimed else await self.backend.get(key)
            except Exception as exc:
                self.stats.errors += 1
                log.warning("request %s: idempotency backend failed: %r", req.meta.request_id, exc)
                return await nxt(ctx)
            if claimed:
                self.stats.first += 1
                return await self._first(ctx, nxt, key, fingerprint, pending)
            if blob is not None:
                try:
                    record = _decode(blob)
                except ValueError as exc:
                    self.stats.errors += 1
                    log.warning("idempotency record unreadable, ignored: %s", exc)
                    return await nxt(ctx)
                if record.fingerprint != fingerprint:
                    self.stats.conflicts += 1
                    raise IdempotencyKeyReusedError(
                        f"Idempotency-Key {given[:64]!r} was already used with a different "
                        "request body; send a new key for a new request",
                        param="Idempotency-Key",
                    )
                if record.response is not None:
                    self.stats.replays += 1
                    ctx.response_headers[REPLAY_HEADER] = "true"
                    ctx.last_response = record.response
                    resp = record.response
                    return events_from_response(resp) if req.stream else resp
                if not waited:
                    waited = True
                    self.stats.waits += 1
            # Running elsewhere (or just released: the next add takes it over).
            if self._clock() >= deadline:
                raise IdempotencyInProgressError(
                    f"a request with Idempotency-Key {given[:64]!r} is still in progress; "
                    "retry later",
                    headers={"retry-after": "1"},
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, self.config.poll_interval_s)

    def _lease_s(self) -> float:
        renewable = getattr(self.backend, "renew", None) is not None
        cfg = self.config
        return min(cfg.lease_s, cfg.pending_ttl_s) if renewable else cfg.pending_ttl_s

    async def _renew_while_running(self, key: str, pending: bytes) -> None:
        """Keep the claim alive while this process runs the call (see the module doc)."""
        renew = getattr(self.backend, "renew", None)
        if renew is None:
            return
        lease = self._lease_s()
        until = self._clock() + self.config.pending_ttl_s
        while self._clock() + lease / 3 < until:
            await asyncio.sleep(lease / 3)
            try:
                if not await renew(key, pending, lease):
                    return  # answered, released, or taken over: nothing left to keep
            except Exception as exc:
                self.stats.errors += 1
                log.warning("idempotency lease not renewed: %r", exc)

    async def _first(
        self, ctx: CallContext, nxt: Handler, key: str, fingerprint: str, pending: bytes
    ) -> Result:
        renewer = asyncio.get_running_loop().create_task(self._renew_while_running(key, pending))

        async def stop_renewing() -> None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

        try:
            result = await nxt(ctx)
        except BaseException:
            await stop_renewing()
            await self.release(key)
            raise
        if isinstance(result, ChatResponse):
            await stop_renewing()
            await self.complete(key, fingerprint, result)
            return result

        async def record_or_release(resp: ChatResponse, completed: bool) -> None:
            await stop_renewing()
            if completed:
                await self.complete(key, fingerprint, resp)
            else:  # failed, cut or closed early: a retry may run it again
                await self.release(key)

        return WatchedStream(result, record_or_release)

    async def complete(self, key: str, fingerprint: str, resp: ChatResponse) -> None:
        try:
            await self.backend.set(key, _encode(fingerprint, resp), self.config.ttl_s)
        except Exception as exc:
            self.stats.errors += 1
            log.warning("idempotency record not stored: %r", exc)
            await self.release(key)

    async def release(self, key: str) -> None:
        self.stats.released += 1
        try:
            await self.backend.delete(key)
        except Exception as exc:
            self.stats.errors += 1
            log.warning("idempotency key not released (expires by itself): %r", exc)


def _encode(fingerprint: str, resp: ChatResponse | None) -> bytes:
    doc: dict[str, Any] = {"v": _RECORD_VERSION, "fp": fingerprint}
    if resp is not None:
        doc["r"] = response_to_json(resp)
    return orjson.dumps(doc)


def _decode(blob: bytes) -> _Record:
    doc = orjson.loads(blob)
    if not isinstance(doc, dict) or doc.get("v") != _RECORD_VERSION:
        raise ValueError("not an idempotency record of this version")
    raw = doc.get("r")
    return _Record(str(doc["fp"]), None if raw is None else response_from_json(raw))
