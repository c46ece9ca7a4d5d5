"""`POST /v1/responses`, `GET|DELETE /v1/responses/{id}`: the OpenAI Responses API front end.

A third front end on the same pipeline as Chat Completions and Messages: the body decodes
into the neutral `ChatRequest` (`sluice.wire.responses`), and the server's chat handler runs
it exactly as it runs the other two (auth, limits and budgets, caches, routing, retries,
structured output, settlement, the call record). What the Responses API adds is state:

- every answer has an id and is stored per tenant (`store`, default true), so a later call
  can continue it with `previous_response_id` and `GET /v1/responses/{id}` can return it;
- the answer echoes its request (instructions, tools, metadata ...).

The `Frontend` codec functions have no request object, so the per-call state (the id, the
echo, the loaded conversation) travels in a context variable that `create` sets around the
chat handler — the same handler, unchanged, in the same task. The stored conversation is
loaded before the handler runs, under the caller's tenant: another tenant's id is simply
not found (404), and a continuation of an unknown id fails in decoding, so it is recorded
like any other bad request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from sluice.edge.body import read_json
from sluice.errors import (
    InvalidRequestError,
    NotFoundError,
    ServiceUnavailableError,
    SluiceError,
)
from sluice.frontends.base import Frontend
from sluice.types import CallMeta, ChatRequest, ChatResponse
from sluice.web.responses_store import ResponseStore, SqlResponseStore, StoredResponse
from sluice.wire.responses.items import page as items_page
from sluice.wire.responses.request import ResponsesParams, decode_params, decode_request
from sluice.wire.responses.response import encode_response, new_id
from sluice.wire.responses.stream import ResponsesEventEncoder

if TYPE_CHECKING:
    from sluice.gateway import Gateway

log = logging.getLogger("sluice.responses")

WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MEMORY_URL = "sqlite://"


@dataclass(slots=True)
class ResponsesCall:
    """One `POST /v1/responses` in flight: what the codec functions need beyond the body."""

    id: str
    created_at: float
    tenant: str = "default"
    store: ResponseStore | None = None
    params: ResponsesParams | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    problem: SluiceError | None = None  # raised when the body is decoded
    final: dict[str, Any] | None = None  # the finished `response` object

    def finished(self, response: dict[str, Any]) -> None:
        """The answer is complete: remember it, and make reads of its id wait for the write."""
        self.final = response
        if self.store is not None and self.params is not None and self.params.store:
            self.store.reserve(self.tenant, self.id)


_CALL: ContextVar[ResponsesCall | None] = ContextVar("sluice_responses_call", default=None)


def _current() -> ResponsesCall:
    call = _CALL.get()
    return call if call is not None else ResponsesCall(new_id("resp"), time.time())


def _decode(body: dict[str, Any], meta: CallMeta) -> ChatRequest:
    call = _current()
    if call.problem is not None:
        raise call.problem
    if call.params is None:
        call.params = decode_params(body)
    return decode_request(body, meta, call.params, call.history)


def _encode(resp: ChatResponse, model: str) -> dict[str, Any]:
    call = _current()
    params = call.params or ResponsesParams()
    body = encode_response(resp, model, call.id, params, call.created_at)
    call.finished(body)
    return body


def _encoder(req: ChatRequest) -> ResponsesEventEncoder:
    call = _current()
    return ResponsesEventEncoder(
        call.id, req.model, call.params or ResponsesParams(), call.finished
    )


def _error(err: SluiceError) -> dict[str, object]:
    return err.openai_body()


# `openai`: the neutral request carries no extras, so nothing of this wire format is ever
# forwarded verbatim; errors are OpenAI-shaped.
RESPONSES_FRONTEND = Frontend("openai", _decode, _encode, _encoder, _error)


class ResponsesAPI:
    """The routes and the store they share."""

    def __init__(self, gateway: Gateway, store: ResponseStore, serve: WebHandler) -> None:
        self.gateway = gateway
        self.store = store
        self._serve = serve

    async def _tenant(self, request: web.Request) -> str:
        return (await self.gateway.authenticate(request.headers)).tenant

    async def create(self, request: web.Request) -> web.StreamResponse:
        call = ResponsesCall(new_id("resp"), time.time(), store=self.store)
        await self._prepare(request, call)
        token = _CALL.set(call)
        try:
            response = await self._serve(request)
            await self._keep(call)
        finally:
            _CALL.reset(token)
            self.store.release(call.tenant, call.id)  # never leave a reader waiting
        return response

    async def _prepare(self, request: web.Request, call: ResponsesCall) -> None:
        """Tenant, parameters and the stored conversation, before the chat handler runs.
        Whatever fails here (a bad key, bad JSON) fails again, recorded, in the handler."""
        try:
            call.tenant = await self._tenant(request)
        except SluiceError:
            return
        cfg = self.gateway.config.server
        try:
            # The edge's reader (Content-Encoding, body timeout, depth), as the handler's:
            # a raw read missed gzip continuations and let a slow body hang here. A body cut
            # short (413, 408) the handler's read raises again, and records.
            body = await read_json(request, cfg.max_body_bytes, cfg.edge)
        except SluiceError:
            return
        try:
            call.params = decode_params(body)
        except SluiceError:
            return
        previous = call.params.previous_response_id
        if previous is not None:
            try:
                stored = await self.store.get(call.tenant, previous)
            except SQLAlchemyError as exc:
                log.warning("response store unavailable: %s", type(exc).__name__)
                call.problem = _store_down()
                return
            if stored is None:
                call.problem = _not_found(previous, "previous_response_id")
            else:
                call.history = stored.items

    async def _keep(self, call: ResponsesCall) -> None:
        """Store a finished answer (and the conversation up to it) when asked to."""
        if call.final is None or call.params is None or not call.params.store:
            return
        items = [*call.history, *call.params.input_items, *call.final["output"]]
        try:
            stored = StoredResponse(
                call.id, call.tenant, call.created_at, call.final, items, len(call.history)
            )
            await self.store.put(stored)
        except (SQLAlchemyError, OSError) as exc:
            # The answer is delivered and charged; only its continuation is lost.
            log.warning("could not store response %s: %s", call.id, type(exc).__name__)

    async def _stored(self, request: web.Request) -> StoredResponse:
        """The caller's stored response named in the path; 404 for anyone else's."""
        response_id = request.match_info["response_id"]
        tenant = await self._tenant(request)
        try:
            stored = await self.store.get(tenant, response_id)
        except SQLAlchemyError:
            raise _store_down() from None
        if stored is None:
            raise _not_found(response_id, "response_id")
        return stored

    async def retrieve(self, request: web.Request) -> web.Response:
        stored = await self._stored(request)
        if request.query.get("stream") in ("true", "1"):
            raise InvalidRequestError(
                "streaming a stored response is not supported", param="stream"
            )
        return web.Response(body=orjson.dumps(stored.response), content_type="application/json")

    async def input_items(self, request: web.Request) -> web.Response:
        """`GET /v1/responses/{id}/input_items` (`after`, `limit`, `order` as OpenAI's)."""
        stored = await self._stored(request)
        query = request.query
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise InvalidRequestError("limit must be an integer", param="limit") from None
        body = items_page(
            stored.own_input,
            stored.id,
            limit=limit,
            order=query.get("order", "desc"),
            after=query.get("after"),
        )
        return web.Response(body=orjson.dumps(body), content_type="application/json")

    async def delete(self, request: web.Request) -> web.Response:
        response_id = request.match_info["response_id"]
        tenant = await self._tenant(request)
        try:
            deleted = await self.store.delete(tenant, response_id)
        except SQLAlchemyError:
            raise _store_down() from None
        if not deleted:
            raise _not_found(response_id, "response_id")
        body = {"id": response_id, "object": "response", "deleted": True}
        return web.Response(body=orjson.dumps(body), content_type="application/json")


def _not_found(response_id: str, param: str) -> NotFoundError:
    """OpenAI's messages and codes; 404 for both (another tenant's answer is not found)."""
    shown = response_id[:128]
    if param == "previous_response_id":
        return NotFoundError(
            f"Previous response with id '{shown}' not found.",
            param=param,
            code="previous_response_not_found",
        )
    return NotFoundError(f"No response found with id '{shown}'.", param=param, code="not_found")


def _store_down() -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "the response store is unavailable; try again",
        code="response_store_unavailable",
        headers={"retry-after": "1"},
    )


def store_url(gateway: Gateway) -> str:
    """The configured store, else the call records' database, else memory (one process)."""
    config = gateway.config
    return (
        config.endpoints.responses.store_url or config.observability.records.store_url or MEMORY_URL
    )


def install(
    app: web.Application, gateway: Gateway, chat_endpoint: Callable[[Frontend], WebHandler]
) -> ResponsesAPI | None:
    """Register the Responses routes on the gateway's app (server.py calls this)."""
    cfg = gateway.config.endpoints.responses
    if not cfg.enabled:
        return None
    store = SqlResponseStore(store_url(gateway), table_name=cfg.table, ttl_s=cfg.ttl_s)
    api = ResponsesAPI(gateway, store, chat_endpoint(RESPONSES_FRONTEND))
    app.router.add_post("/v1/responses", api.create)
    app.router.add_post("/responses", api.create)
    app.router.add_get("/v1/responses/{response_id}", api.retrieve)
    app.router.add_delete("/v1/responses/{response_id}", api.delete)
    app.router.add_get("/v1/responses/{response_id}/input_items", api.input_items)

    async def _start(_app: web.Application) -> None:
        await store.start()

    async def _close(_app: web.Application) -> None:
        await store.close()

    app.on_startup.append(_start)
    app.on_cleanup.append(_close)
    return api
