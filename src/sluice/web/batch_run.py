"""Running a batch's items through the gateway: the item runner the `BatchRunner` is given
(each item a non-streamed call through `Gateway.handler`, its charge held back and written
with its result), the per-model share of deployments batch items may use, and forward mode's
target and charges. The HTTP endpoints are `sluice.web.batches`."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from sluice.batch.forward import Price
from sluice.batch.model import Batch, Claim, Outcome, Wire, charge_key
from sluice.batch.runner import ItemRunner
from sluice.batch.store import AfterCharge, BatchStore
from sluice.batch.validate import Parsed
from sluice.cost.compute import compute_cost
from sluice.errors import InternalError, InvalidRequestError, PermissionDeniedError, SluiceError
from sluice.frontends.anthropic import ANTHROPIC_FRONTEND
from sluice.frontends.openai import OPENAI_FRONTEND
from sluice.governance.scopes import Who, budget_scopes
from sluice.identity import Credentials, Identity
from sluice.observe.records import CallRecord
from sluice.observe.rows import storable
from sluice.pipeline.context import CallContext
from sluice.providers.batch_clients import BatchResult
from sluice.state import charges
from sluice.types import CallMeta, ChatResponse, Usage
from sluice.web.jobs import identity_of

if TYPE_CHECKING:
    from sluice.gateway import Gateway

log = logging.getLogger("sluice.batch")


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
