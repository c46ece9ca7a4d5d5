"""`/v1/batches` (OpenAI Batches) and `/v1/messages/batches` (Anthropic Message Batches).

Both shapes over one `BatchStore` and one `BatchRunner` (`sluice.batch`). This module and
`sluice.web.batch_run` are where the batch package meets the gateway: the runner is given an
item runner that sends each item through the gateway's whole pipeline (`Gateway.handler`:
auth as the batch's creator, limits and budgets, caches, routing, retries, settlement) and
leaves a call record whose `parent_request_id` is the batch id (`sluice report --by batch`).
The runner is one of the gateway's supervised parts, so it starts after everything it uses
and stops first.

Every lookup is under the caller's tenant (another tenant's batch: the same 404 as an
unknown id), and a batch made through one API is not visible through the other.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from sluice.batch.forward import Forwarder
from sluice.batch.metrics import BatchMetrics
from sluice.batch.model import (
    ENDED,
    WINDOWS_S,
    Batch,
    Wire,
    identity_to_json,
    new_batch_id,
)
from sluice.batch.runner import ITEM_KIND, BatchRunner, anthropic_line
from sluice.batch.store import BatchStore
from sluice.batch.validate import ENDPOINTS, Parsed, parse_anthropic, parse_openai
from sluice.edge.body import read_json
from sluice.errors import (
    InvalidRequestError,
    NotFoundError,
)
from sluice.identity import Identity
from sluice.providers.batch_clients import BatchClient, make_batch_client
from sluice.queue import Queue, build_queue
from sluice.web.appkeys import GATEWAY
from sluice.web.batch_run import forward_charges, forward_target, item_runner, share_of
from sluice.web.files import not_found as file_not_found
from sluice.web.jobs import QUEUE, QUEUE_HANDLERS

if TYPE_CHECKING:
    from sluice.gateway import Gateway

STORE: web.AppKey[BatchStore] = web.AppKey("batch_store", BatchStore)
RUNNER: web.AppKey[BatchRunner] = web.AppKey("batch_runner", BatchRunner)
_MAX_LIST = 100


# --- helpers --------------------------------------------------------------------------


async def _caller(request: web.Request) -> Identity:
    return await request.app[GATEWAY].authenticate(request.headers)


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _not_found(batch_id: str) -> NotFoundError:
    return NotFoundError(f"No such batch: {batch_id[:64]}", param="batch_id")


async def _found(request: web.Request, wire: Wire) -> tuple[Identity, Batch]:
    identity = await _caller(request)
    batch_id = request.match_info["batch_id"]
    batch = await request.app[STORE].get(identity.tenant, batch_id, wire)
    if batch is None:
        raise _not_found(batch_id)
    return identity, batch


async def _create(
    request: web.Request,
    identity: Identity,
    wire: Wire,
    parsed: Parsed,
    **fields: Any,
) -> Batch:
    now = time.time()
    failed = bool(parsed.errors)
    errors = parsed.errors
    if failed and parsed.error_count > len(parsed.errors):
        errors = [
            *errors,
            {
                "code": "more_errors",
                "message": f"{parsed.error_count - len(errors)} more lines have errors",
                "param": None,
                "line": None,
            },
        ]
    window = fields.pop("completion_window", "24h")
    provider = None if failed else forward_target(request.app[GATEWAY], wire, parsed, identity)
    batch = Batch(
        id=new_batch_id(wire),
        tenant=identity.tenant,
        wire=wire,
        mode="run" if provider is None else "forward",
        provider=provider,
        endpoint=fields.pop("endpoint", "/v1/messages"),
        status="failed" if failed else "in_progress",
        completion_window=window,
        created_at=now,
        expires_at=now + WINDOWS_S.get(window, 86_400.0),
        total=0 if failed else len(parsed.items),
        times={"failed_at": now} if failed else {"in_progress_at": now},
        errors=errors or None,
        **fields,
    )
    store = request.app[STORE]
    await store.create(batch, identity_to_json(identity), [] if failed else parsed.items)
    if not failed and provider is None:
        await request.app[RUNNER].submit(batch.id, [item.idx for item in parsed.items])
    made = await store.get(identity.tenant, batch.id, wire)
    assert made is not None
    return made


def _limit(request: web.Request, default: int = 20) -> int:
    try:
        limit = int(request.query.get("limit", str(default)))
    except ValueError:
        raise InvalidRequestError("limit must be an integer", param="limit") from None
    if not 1 <= limit <= _MAX_LIST:
        raise InvalidRequestError(f"limit must be between 1 and {_MAX_LIST}", param="limit")
    return limit


async def _cancel(request: web.Request, batch: Batch) -> Batch:
    store = request.app[STORE]
    if batch.status in ("in_progress", "validating"):
        await store.transition(batch.id, (batch.status,), "cancelling")
        await request.app[RUNNER].cancel(batch.id)
    elif batch.status in ENDED and batch.status != "cancelled":
        raise InvalidRequestError(f"cannot cancel a batch that is {batch.status}")
    again = await store.get(batch.tenant, batch.id, batch.wire)
    assert again is not None
    return again


# --- OpenAI ---------------------------------------------------------------------------


async def openai_create(request: web.Request) -> web.Response:
    identity = await _caller(request)
    gateway = request.app[GATEWAY]
    cfg = gateway.config
    body = await read_json(request, 64 * 1024, cfg.server.edge)
    endpoint = body.get("endpoint")
    if endpoint not in ENDPOINTS:
        raise InvalidRequestError(
            f"endpoint must be one of {', '.join(ENDPOINTS)}", param="endpoint"
        )
    window = body.get("completion_window")
    if window not in cfg.batch.completion_windows or window not in WINDOWS_S:
        allowed = ", ".join(cfg.batch.completion_windows)
        raise InvalidRequestError(
            f"completion_window must be one of {allowed}", param="completion_window"
        )
    metadata = body.get("metadata")
    if metadata is not None and not _valid_metadata(metadata):
        raise InvalidRequestError("metadata: at most 16 string pairs", param="metadata")
    file_id = body.get("input_file_id")
    if not isinstance(file_id, str) or gateway.files is None:
        raise InvalidRequestError("input_file_id is required", param="input_file_id")
    found = await gateway.files.get(identity.tenant, file_id)
    data = await gateway.files.content(identity.tenant, file_id)
    if found is None or data is None:
        raise file_not_found(file_id)
    if found.purpose != "batch":
        raise InvalidRequestError("the input file's purpose must be batch", param="input_file_id")
    # In a worker thread: a 100 MB file takes seconds to check, and the event loop
    # answers every interactive call meanwhile.
    parsed = await asyncio.to_thread(parse_openai, data, endpoint, cfg.batch.max_items)
    batch = await _create(
        request,
        identity,
        "openai",
        parsed,
        endpoint=endpoint,
        completion_window=window,
        input_file_id=file_id,
        metadata=metadata,
    )
    return _json(batch.to_openai())


def _valid_metadata(metadata: Any) -> bool:
    return (
        isinstance(metadata, dict)
        and len(metadata) <= 16
        and all(isinstance(k, str) and len(k) <= 64 for k in metadata)
        and all(isinstance(v, str) and len(v) <= 512 for v in metadata.values())
    )


async def openai_retrieve(request: web.Request) -> web.Response:
    _identity, batch = await _found(request, "openai")
    return _json(batch.to_openai())


async def openai_cancel(request: web.Request) -> web.Response:
    _identity, batch = await _found(request, "openai")
    return _json((await _cancel(request, batch)).to_openai())


async def openai_list(request: web.Request) -> web.Response:
    identity = await _caller(request)
    page, more = await request.app[STORE].page(
        identity.tenant, "openai", _limit(request), request.query.get("after") or None
    )
    data = [b.to_openai() for b in page]
    return _json(
        {
            "object": "list",
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


# --- Anthropic ------------------------------------------------------------------------


def _results_url(request: web.Request, batch_id: str) -> str:
    return f"{request.scheme}://{request.host}/v1/messages/batches/{batch_id}/results"


async def anthropic_create(request: web.Request) -> web.Response:
    identity = await _caller(request)
    cfg = request.app[GATEWAY].config
    body = await read_json(request, cfg.server.max_body_bytes, cfg.server.edge)
    parsed = parse_anthropic(body.get("requests"), cfg.batch.max_items)
    if parsed.errors:  # Anthropic refuses a bad request list outright
        first = parsed.errors[0]
        where = f"requests[{first['line']}]: " if first.get("param") != "requests" else ""
        raise InvalidRequestError(f"{where}{first['message']}", param=first.get("param"))
    batch = await _create(request, identity, "anthropic", parsed)
    return _json(batch.to_anthropic(_results_url(request, batch.id)))


async def anthropic_retrieve(request: web.Request) -> web.Response:
    _identity, batch = await _found(request, "anthropic")
    return _json(batch.to_anthropic(_results_url(request, batch.id)))


async def anthropic_cancel(request: web.Request) -> web.Response:
    _identity, batch = await _found(request, "anthropic")
    batch = await _cancel(request, batch)
    return _json(batch.to_anthropic(_results_url(request, batch.id)))


async def anthropic_list(request: web.Request) -> web.Response:
    identity = await _caller(request)
    page, more = await request.app[STORE].page(
        identity.tenant, "anthropic", _limit(request), request.query.get("after_id") or None
    )
    data = [b.to_anthropic(_results_url(request, b.id)) for b in page]
    return _json(
        {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


async def anthropic_results(request: web.Request) -> web.StreamResponse:
    _identity, batch = await _found(request, "anthropic")
    if batch.status not in ENDED:
        raise InvalidRequestError(f"batch {batch.id} is still processing; results are not ready")
    items = await request.app[STORE].items(batch.id)

    def encode() -> bytes:  # up to max_items results: off the event loop
        lines = [
            orjson.dumps(anthropic_line(custom_id, state, result))
            for _idx, custom_id, state, result in items
        ]
        return b"\n".join(lines) + b"\n"

    body = await asyncio.to_thread(encode)
    return web.Response(body=body, content_type="application/x-jsonl")


# --- wiring ---------------------------------------------------------------------------


def _runner(gateway: Gateway, store: BatchStore, queue: Queue) -> BatchRunner:
    cfg = gateway.config.batch

    def make_client(provider: str) -> BatchClient:
        return make_batch_client(provider, gateway.config.providers[provider])

    price, after = forward_charges(gateway, store)
    store.after_charge = after
    return BatchRunner(
        store,
        queue,
        gateway.files,
        item_runner(gateway),
        cfg,
        share_of(gateway),
        BatchMetrics(gateway.recorder.metrics.registry),
        Forwarder(store, make_client, price, cfg.forward_poll_s),
    )


def batch_store(gateway: Gateway) -> BatchStore:
    """The batch store, with the spend ledger's database when the gateway keeps one (items
    are charged with their results, `sluice.state.charges`)."""
    ledger = gateway.limits.ledger if gateway.limits is not None else None
    config = gateway.config
    if ledger is None:
        return BatchStore(config.batch.store_url)
    return BatchStore(
        config.batch.store_url,
        ledger_url=config.limits.ledger.store_url,
        migrate_ledger=config.limits.ledger.migrate,
    )


def install(app: web.Application) -> None:
    """Routes, the store and the runner (a supervised part of the gateway); after
    `sluice.web.jobs.install`, whose queue worker runs the items (unless
    `batch.worker: separate`: then `sluice batch worker` processes run them)."""
    gateway = app[GATEWAY]
    cfg = gateway.config.batch
    if not cfg.enabled:
        return
    store = batch_store(gateway)
    runner = _runner(gateway, store, app[QUEUE])  # the app's one queue (sluice.web.jobs)
    app[STORE] = store
    app[RUNNER] = runner
    inline = cfg.worker == "inline"
    if inline:
        app[QUEUE_HANDLERS][ITEM_KIND] = runner.handle

    async def _start() -> None:
        await store.start()
        await runner.start(work=inline)

    async def _stop() -> None:
        await runner.close()
        await store.close()

    gateway.supervisor.add("batches", _start, _stop)
    r = app.router
    r.add_post("/v1/batches", openai_create)
    r.add_get("/v1/batches", openai_list)
    r.add_get("/v1/batches/{batch_id}", openai_retrieve)
    r.add_post("/v1/batches/{batch_id}/cancel", openai_cancel)
    r.add_post("/v1/messages/batches", anthropic_create)
    r.add_get("/v1/messages/batches", anthropic_list)
    r.add_get("/v1/messages/batches/{batch_id}", anthropic_retrieve)
    r.add_post("/v1/messages/batches/{batch_id}/cancel", anthropic_cancel)
    r.add_get("/v1/messages/batches/{batch_id}/results", anthropic_results)


async def run_worker(gateway: Gateway) -> None:
    """`sluice batch worker`: a process that only runs batch items (and batches'
    housekeeping) through its own copy of the pipeline, beside gateways configured with
    `batch.worker: separate`. Runs until cancelled (SIGTERM/SIGINT)."""
    config = gateway.config
    queue = build_queue(config.queue)
    store = batch_store(gateway)
    runner = _runner(gateway, store, queue)
    await gateway.start()
    await queue.start()
    await store.start()
    await runner.start()
    try:
        await queue.run({ITEM_KIND: runner.handle}, concurrency=config.queue.concurrency)
    finally:
        await runner.close()
        await store.close()
        await queue.close()
        await gateway.close()
