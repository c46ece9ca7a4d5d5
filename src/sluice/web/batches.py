"""`/v1/batches` (OpenAI Batches) and `/v1/messages/batches` (Anthropic Message Batches).

Both shapes over one `BatchStore` and one `BatchRunner` (`sluice.batch`). This module is
where the batch package meets the gateway: it gives the runner an item runner that sends
each item through the gateway's whole pipeline (`Gateway.handler`: auth as the batch's
creator, limits and budgets, caches, routing, retries, settlement) and leaves a call record
whose `parent_request_id` is the batch id (`sluice report --by batch`). The runner is one
of the gateway's supervised parts, so it starts after everything it uses and stops first.

Every lookup is under the caller's tenant (another tenant's batch: the same 404 as an
unknown id), and a batch made through one API is not visible through the other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from sluice.batch.forward import Forwarder, Price
from sluice.batch.metrics import BatchMetrics
from sluice.batch.model import (
    ENDED,
    WINDOWS_S,
    Batch,
    Claim,
    Outcome,
    Wire,
    charge_key,
    identity_to_json,
    new_batch_id,
)
from sluice.batch.runner import ITEM_KIND, BatchRunner, ItemRunner, anthropic_line
from sluice.batch.store import AfterCharge, BatchStore
from sluice.batch.validate import ENDPOINTS, Parsed, parse_anthropic, parse_openai
from sluice.cost.compute import compute_cost
from sluice.edge.body import read_json
from sluice.errors import (
    InternalError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    SluiceError,
)
from sluice.frontends.anthropic import ANTHROPIC_FRONTEND
from sluice.frontends.openai import OPENAI_FRONTEND
from sluice.governance.scopes import Who, budget_scopes
from sluice.identity import Credentials, Identity
from sluice.observe.records import CallRecord
from sluice.observe.rows import storable
from sluice.pipeline.context import CallContext
from sluice.providers.batch_clients import BatchClient, BatchResult, make_batch_client
from sluice.queue import Queue, build_queue
from sluice.state import charges
from sluice.types import CallMeta, ChatResponse, Usage
from sluice.web.appkeys import GATEWAY
from sluice.web.files import not_found as file_not_found
from sluice.web.jobs import QUEUE, QUEUE_HANDLERS, identity_of

if TYPE_CHECKING:
    from sluice.gateway import Gateway

log = logging.getLogger("sluice.batch")
STORE: web.AppKey[BatchStore] = web.AppKey("batch_store", BatchStore)
RUNNER: web.AppKey[BatchRunner] = web.AppKey("batch_runner", BatchRunner)
_MAX_LIST = 100


def item_runner(gateway: Gateway) -> ItemRunner:
    """Runs one batch item as a non-streamed call through the gateway's pipeline. Its
    spend-ledger row is held back (`CallContext.hold_charge`) and returned with the
    outcome: the runner writes it with the item's result, so the item is charged exactly
    once however often the queue runs it (`sluice.state.charges`)."""

    async def run(claim: Claim) -> Outcome:
        await _after_interactive(gateway)
        frontend = OPENAI_FRONTEND if claim.wire == "openai" else ANTHROPIC_FRONTEND
        request_id = f"{claim.batch_id}-{claim.idx}"
        started, wall_start = time.perf_counter(), time.time()
        meta = CallMeta(
            request_id=request_id,
            wire=frontend.wire,
            headers={"x-sluice-parent-request-id": claim.batch_id},
        )
        ctx: CallContext | None = None
        held: list[Any] = []

        def charge() -> str | None:
            return charges.held(held, charge_key(claim.batch_id, claim.idx))

        try:
            # The creator's key as it is now: revoked or expired meanwhile, the item is a 401
            # line (the budgets and limits that apply are the key's current ones).
            identity = await identity_of(gateway, claim.identity.key_id)
            body = orjson.loads(claim.body)
            body["stream"] = False
            body.pop("stream_options", None)
            ctx = CallContext(
                frontend.decode_request(body, meta),
                started,
                credentials=Credentials(resolved=identity),
                hold_charge=held,
            )
            result = await gateway.handler(ctx)
            if not isinstance(result, ChatResponse):  # not streamed: never happens
                raise InvalidRequestError("batch items cannot stream")
            # encoded inside: should it fail, the call still has its record and its charge
            payload = frontend.encode_response(result, ctx.request.model)
        except SluiceError as err:
            gateway.recorder.finish(
                ctx,
                request_id=request_id,
                started=started,
                wall_start=wall_start,
                status=err.http_status,
                error_type=err.code,
            )
            return Outcome(err.http_status, frontend.error_body(err), request_id, charge())
        except Exception:  # after the upstream answered, maybe: its held charge stays
            log.exception("batch item %s: unexpected error", request_id)
            internal = InternalError(f"internal error; request id {request_id}")
            gateway.recorder.finish(
                ctx,
                request_id=request_id,
                started=started,
                wall_start=wall_start,
                status=500,
                error_type=internal.code,
            )
            return Outcome(500, frontend.error_body(internal), request_id, charge())
        gateway.recorder.finish(
            ctx, request_id=request_id, started=started, wall_start=wall_start, status=200
        )
        return Outcome(200, payload, request_id, charge())

    return run


_YIELD_STEP_S = 0.002
_YIELD_MAX_S = 0.25


async def _after_interactive(gateway: Gateway) -> None:
    """Lowest priority inside the process: an item starts only when no interactive call is
    being answered (it waits at most `_YIELD_MAX_S`, so a batch still moves under constant
    traffic). The gateway answers from one event loop: an item running beside a call
    delays it, whatever the queue's priorities say (see `sluice bench batch`)."""
    waited = 0.0
    while gateway.active_calls > 0 and waited < _YIELD_MAX_S:
        await asyncio.sleep(_YIELD_STEP_S)
        waited += _YIELD_STEP_S


def share_of(gateway: Gateway) -> Any:
    """Items of one model in flight at most: `run_share` of its deployments' concurrency
    (`max_concurrency`), else of `batch.max_concurrency`."""
    cfg = gateway.config.batch

    def share(model: str) -> int:
        deployments = gateway.runtime.by_model.get(model, [])
        caps = [d.max_concurrency for d in deployments if d.max_concurrency]
        total = sum(caps) if caps and len(caps) == len(deployments) else cfg.max_concurrency
        return max(1, int(total * cfg.run_share))

    return share


def forward_target(
    gateway: Gateway, wire: Wire, parsed: Parsed, identity: Identity
) -> dict[str, Any] | None:
    """Where a batch is forwarded (None: run mode). Forward mode needs one model per batch
    and a deployment whose provider speaks the batch's API (no translation of items).

    A forwarded batch skips the pipeline, so what the pipeline would enforce is enforced
    here: the key's model allowlist (403, as the sync endpoint answers), and budgets —
    the provider runs every item at once and cannot be stopped at a budget, so a caller
    under any budget (`limits.enabled`) gets run mode instead: each item reserves and
    settles as it runs, and items past the budget fail `budget_exceeded`."""
    cfg = gateway.config.batch
    models = {str(item.body.get("model")) for item in parsed.items}
    modes = {cfg.models.get(m, cfg.mode) for m in models}
    if modes == {"run"}:
        return None
    for model in sorted(models):
        if not identity.allows(model):
            raise PermissionDeniedError(
                f"this API key may not use model {model[:100]!r}",
                param="model",
                code="model_not_allowed",
            )
    limits = gateway.config.limits
    if limits.enabled and budget_scopes(Who.of(identity, CallMeta()), limits):
        return None
    if len(models) != 1:
        raise InvalidRequestError("a forwarded batch must use one model (batch.mode: forward)")
    model = models.pop()
    deployments = gateway.runtime.by_model.get(model) or []
    if not deployments:
        raise InvalidRequestError(f"model {model!r} has no deployment to forward the batch to")
    dep = deployments[0]
    kind = gateway.config.providers[dep.provider].kind
    if kind != wire:
        raise InvalidRequestError(
            f"model {model!r} is served by a {kind} provider; forwarding a {wire} batch there "
            "is not supported (use batch.mode: run for it)"
        )
    return {
        "provider": dep.provider,
        "deployment": dep.id,
        "model": model,
        "upstream_model": dep.model,
    }


_WHO_TTL_S = 1.0


def forward_charges(gateway: Gateway, store: BatchStore) -> tuple[Price, AfterCharge]:
    """A forwarded item's charge, at the provider's batch price (`batch_discount`): `price`
    gives its spend-ledger row, attributed to the batch's creator (tenant, key, team, user),
    held to be written with the item's result (`sluice.state.charges`), and as the row's
    follow-up its call record and the budget counters that apply to the key now; `after`
    runs that follow-up (`GovernanceStage.charge` without the ledger row). Run mode and
    interactive calls reach all three through the pipeline; a forwarded item skips it."""
    # Per batch being collected: (read at, its creator, the creator's key as it is now) —
    # one store read each per batch and second, not per item.
    who: dict[str, tuple[float, Identity, Identity]] = {}

    async def identities(batch_id: str) -> tuple[Identity, Identity]:
        now = time.monotonic()
        found = who.get(batch_id)
        if found is None or now - found[0] > _WHO_TTL_S:
            if len(who) > 1000:  # bounded: entries of batches collected long ago go
                who.clear()
            made_by = await store.creator(batch_id) or Identity.anonymous()
            try:  # the key's budgets as they are now; revoked meanwhile: still its spend
                charged = await identity_of(gateway, made_by.key_id)
            except SluiceError:
                charged = made_by
            if charged.tenant != made_by.tenant:  # never another tenant's counters
                charged = made_by
            found = who[batch_id] = (now, made_by, charged)
        return found[1], found[2]

    async def price(batch: Batch, idx: int, result: BatchResult) -> tuple[str | None, Any]:
        state = batch.provider or {}
        usage = result.usage or Usage()
        cost = compute_cost(
            usage, gateway.settle.price_of(str(state.get("deployment"))), batch=True
        )
        made_by, _ = await identities(batch.id)
        request_id = f"{batch.id}-{idx}"
        model = str(state.get("model", ""))
        deployment = state.get("deployment")
        rec = CallRecord(
            request_id=request_id,
            parent_request_id=batch.id,
            tenant=batch.tenant,
            key_id=made_by.key_id,
            user_id=made_by.user,
            model_requested=model,
            deployment=deployment,
            provider=state.get("provider"),
            upstream_model=state.get("upstream_model"),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cost_usd=cost,
            usage_source="provider",
            status=200 if result.ok else result.status_code or 500,
        )
        after = {"batch": batch.id, "record": storable(rec).to_json()}
        row = None
        if gateway.limits is not None:
            row = gateway.limits.ledger_row(
                made_by,
                request_id=request_id,
                model=model,
                deployment=None if deployment is None else str(deployment),
                usage=usage,
                cost_usd=cost,
            )
        if row is None or store.ledger_url is None:
            return None, after
        return charges.encode(row, charge_key(batch.id, idx), after), after

    async def after(doc: dict[str, Any]) -> None:
        rec = CallRecord.from_json(doc["record"])
        gateway.recorder.sink.emit(rec)
        if gateway.limits is None:
            return
        _, charged = await identities(str(doc["batch"]))
        usage = Usage(
            input_tokens=rec.input_tokens or 0,
            output_tokens=rec.output_tokens or 0,
            cache_read_tokens=rec.cache_read_tokens or 0,
            cache_write_tokens=rec.cache_write_tokens or 0,
        )
        await gateway.limits.charge(
            charged,
            request_id=rec.request_id,
            model=rec.model_requested or "",
            deployment=rec.deployment,
            usage=usage,
            cost_usd=rec.cost_usd,
            ledger=False,  # written with the item's result (`price`)
        )

    return price, after


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
