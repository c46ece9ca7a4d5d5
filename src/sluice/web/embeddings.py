"""`POST /v1/embeddings`: OpenAI's embeddings endpoint, forwarded or served locally.

- The local model (`endpoints.embeddings.local_model`, default `local-minilm`) is the
  MiniLM sentence embedder the semantic cache uses (`sluice.embed`): 384-d, offline, free.
- Any other name is forwarded to the model's deployments on OpenAI-kind providers, in
  order (a retryable failure tries the next), with the deployment's upstream model name.
  Anthropic has no embeddings API: a model served only there is a 400.

Embeddings are not chat calls, so they skip the chat stages (caches, routing); they are
authenticated (the key's model allow-list holds), pass the limits stage (rate limits, hard
budgets: admitted, then settled at the deployment's input price; local ones at $0), and every
call leaves one call record like every other call.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from sluice.config import OpenAIProviderConfig
from sluice.cost.compute import compute_cost
from sluice.edge.body import read_json
from sluice.embed import EmbedderUnavailableError, get_embedder
from sluice.errors import (
    InternalError,
    InvalidRequestError,
    ServiceUnavailableError,
    SluiceError,
    UpstreamError,
)
from sluice.frontends.config import EmbeddingsConfig
from sluice.pipeline.context import CallContext
from sluice.providers.base import Deployment
from sluice.providers.forwarding import HeaderFilter, upstream_headers
from sluice.providers.http import UpstreamTransport, make_transport
from sluice.tokens import count_text
from sluice.types import CallMeta, ChatRequest, ChatResponse, Message, TextPart, Usage
from sluice.wire.fields import invalid, opt, req

if TYPE_CHECKING:
    from sluice.gateway import Gateway

log = logging.getLogger("sluice.embeddings")

LOCAL_DIMENSIONS = 384
CLIENT_CLOSED = 499  # as the chat handler records a caller that left
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


@dataclass(slots=True)
class EmbeddingsRequest:
    model: str
    inputs: list[str] | list[list[int]]
    encoding_format: str  # "float" | "base64"
    dimensions: int | None
    body: dict[str, Any]  # what the client sent (forwarded with the upstream model name)


def decode(body: dict[str, Any], max_inputs: int) -> EmbeddingsRequest:
    model = req(body, "model", str, "")
    raw = body.get("input")
    inputs: list[str] | list[list[int]]
    if isinstance(raw, str):
        inputs = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(v, str) for v in raw):
        inputs = list(raw)
    elif isinstance(raw, list) and raw and all(_is_int(v) for v in raw):
        inputs = [list(raw)]
    elif isinstance(raw, list) and raw and all(_token_list(v) for v in raw):
        inputs = [list(v) for v in raw]
    else:
        raise invalid("input", "must be a string, an array of strings or of token arrays")
    if len(inputs) > max_inputs:
        raise invalid("input", f"may hold at most {max_inputs} inputs")
    if any(not item for item in inputs):
        raise invalid("input", "inputs must not be empty")
    fmt = opt(body, "encoding_format", str, "") or "float"
    if fmt not in ("float", "base64"):
        raise invalid("encoding_format", "must be 'float' or 'base64'")
    dimensions = opt(body, "dimensions", int, "")
    if dimensions is not None and dimensions < 1:
        raise invalid("dimensions", "must be at least 1")
    return EmbeddingsRequest(model, inputs, fmt, dimensions, body)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(v) for v in value)


def _request_id(request: web.Request) -> str:
    given = request.headers.get("x-sluice-request-id")
    if given and _REQUEST_ID.match(given):
        return given
    return f"req_{time.time_ns() // 1_000_000:012x}{random.getrandbits(80):020x}"


class EmbeddingsAPI:
    def __init__(self, gateway: Gateway, config: EmbeddingsConfig) -> None:
        self.gateway = gateway
        self.config = config
        self._clients: dict[str, UpstreamTransport] = {}

    async def handle(self, request: web.Request) -> web.Response:
        started, wall_start = time.perf_counter(), time.time()
        gateway = self.gateway
        request_id = _request_id(request)
        ctx: CallContext | None = None
        status, error_type = 200, None
        try:
            identity = await gateway.authenticate(request.headers)
            server = gateway.config.server
            body = await read_json(request, server.max_body_bytes, server.edge)
            emb = decode(body, self.config.max_inputs)
            headers = {k.lower(): v for k, v in request.headers.items()}
            meta = CallMeta(
                request_id=request_id,
                headers={k: v for k, v in headers.items() if k.startswith("x-sluice-")},
                forward_headers=gateway.forwarded.select(headers) if gateway.forwarded else {},
            )
            meta.user = opt(body, "user", str, "")
            # The texts as one user turn, so limits estimate the input like a chat call's;
            # one output token reserved (embeddings have none).
            texts = [TextPart(t) for t in emb.inputs if isinstance(t, str)]
            messages = [Message("user", list(texts))] if texts else []
            chat = ChatRequest(model=emb.model, messages=messages, max_tokens=1, meta=meta)
            ctx = CallContext(chat, started, identity=identity)
            gateway.governance.auth.admit(identity, ctx.request)
            serve = self._local if emb.model == self.config.local_model else self._forward
            out = await self._metered(emb, ctx, serve)
        except SluiceError as err:
            status, error_type = err.http_status, err.code
            return _error(err, request_id)
        except asyncio.CancelledError:
            status, error_type = CLIENT_CLOSED, "client_disconnected"
            raise
        except Exception:
            log.exception("request %s: unexpected error", request_id)
            internal = InternalError(f"internal error; request id {request_id}")
            status, error_type = 500, internal.code
            return _error(internal, request_id)
        finally:
            gateway.recorder.finish(
                ctx,
                request_id=request_id,
                started=started,
                wall_start=wall_start,
                status=status,
                error_type=error_type,
            )
        headers = {"x-sluice-request-id": request_id, "x-request-id": request_id}
        if ctx.deployment is not None:
            headers["x-sluice-deployment"] = ctx.deployment.id
        return web.Response(
            body=orjson.dumps(out), content_type="application/json", headers=headers
        )

    async def _local(self, emb: EmbeddingsRequest, ctx: CallContext) -> dict[str, Any]:
        if emb.dimensions is not None and emb.dimensions != LOCAL_DIMENSIONS:
            raise invalid("dimensions", f"{emb.model} makes {LOCAL_DIMENSIONS}-d vectors only")
        texts = [t for t in emb.inputs if isinstance(t, str)]
        if len(texts) != len(emb.inputs):
            raise invalid("input", f"{emb.model} takes text, not token arrays")
        try:
            vectors = await get_embedder(self.gateway.config.embedding).embed(texts)
        except EmbedderUnavailableError as exc:
            raise ServiceUnavailableError(f"{emb.model} is unavailable: {exc}") from None
        data = []
        for i, vec in enumerate(vectors):
            value: Any = (
                base64.b64encode(vec.astype("<f4").tobytes()).decode()
                if emb.encoding_format == "base64"
                else [float(x) for x in vec]
            )
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(count_text(t) for t in texts)  # an estimate; the model is free
        ctx.usage = Usage(input_tokens=tokens)
        ctx.cost_usd = Decimal(0)
        return _listing(data, emb.model, tokens)

    async def _metered(
        self,
        emb: EmbeddingsRequest,
        ctx: CallContext,
        serve: Callable[[EmbeddingsRequest, CallContext], Awaitable[dict[str, Any]]],
    ) -> dict[str, Any]:
        """Serve under the limits stage, as a chat call runs: admitted against the key's rate
        limits and hard budgets, then settled with the usage and cost (a priced call must not
        bypass a budget; a free local one must not bypass the request rate, or one caller
        could pin the gateway's CPU with MiniLM work)."""
        limits = self.gateway.limits
        if limits is None:
            return await serve(emb, ctx)
        out: dict[str, Any] = {}

        async def forward(call: CallContext) -> ChatResponse:
            out.update(await serve(emb, call))
            return ChatResponse(call.request.meta.request_id, emb.model, [], usage=call.usage)

        await limits(ctx, forward)
        return out

    def _deployments(self, model: str) -> list[tuple[Deployment, OpenAIProviderConfig]]:
        runtime = self.gateway.runtime
        found = []
        for dep in runtime.deployments_for(model):  # 404 for an unknown model
            cfg = self.gateway.config.providers[dep.provider]
            if isinstance(cfg, OpenAIProviderConfig):
                found.append((dep, cfg))
        if not found:
            raise InvalidRequestError(
                f"model {model!r} is not served by an OpenAI-kind provider; "
                "only those have an embeddings API",
                param="model",
                code="model_not_embeddings",
            )
        return found

    async def _forward(self, emb: EmbeddingsRequest, ctx: CallContext) -> dict[str, Any]:
        last: UpstreamError | None = None
        for dep, cfg in self._deployments(emb.model):
            ctx.attempts += 1
            ctx.deployment = dep
            try:
                _, answer = await self._post(dep, cfg, emb, ctx.request.meta)
            except UpstreamError as exc:
                last = exc
                if not exc.retryable:
                    raise
                ctx.fallback = True
                continue
            if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
                raise UpstreamError(f"upstream {dep.id} sent no embeddings", deployment=dep.id)
            answer["model"] = emb.model
            usage = answer.get("usage")
            tokens = int(usage.get("prompt_tokens") or 0) if isinstance(usage, dict) else 0
            ctx.usage = Usage(input_tokens=tokens)
            ctx.cost_usd = compute_cost(ctx.usage, self.gateway.settle.price_of(dep.id))
            ctx.cost_known = ctx.cost_usd is not None
            return answer
        assert last is not None
        raise last

    async def _post(
        self, dep: Deployment, cfg: OpenAIProviderConfig, emb: EmbeddingsRequest, meta: CallMeta
    ) -> tuple[Any, Any]:
        client = self._clients.get(dep.provider)
        if client is None:
            client = make_transport(cfg.transport, dep.provider, cfg.max_connections)
            self._clients[dep.provider] = client
        base = {"content-type": "application/json", **cfg.headers}
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if key:
            base["authorization"] = f"Bearer {key}"
        headers = upstream_headers(base, HeaderFilter(cfg.forward_headers), meta)
        body = orjson.dumps({**emb.body, "model": dep.model})
        url = cfg.api_base.rstrip("/") + "/embeddings"
        answer: tuple[Any, Any] = await client.post(url, headers, body, dep.timeouts, dep.id)
        return answer

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()


def _listing(data: list[dict[str, Any]], model: str, tokens: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _error(err: SluiceError, request_id: str) -> web.Response:
    return web.Response(
        status=err.http_status,
        body=orjson.dumps(err.openai_body()),
        content_type="application/json",
        headers={**err.headers, "x-sluice-request-id": request_id},
    )
