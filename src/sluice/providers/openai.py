"""OpenAI Chat Completions over HTTP; also every OpenAI-compatible server via `api_base`."""

from __future__ import annotations

import os

import orjson

from sluice.config import OpenAIProviderConfig
from sluice.errors import UpstreamConnectError
from sluice.providers.base import Deployment
from sluice.providers.forwarding import HeaderFilter, upstream_headers
from sluice.providers.http import READ_BOUNDARY, make_transport, parse_event_json
from sluice.providers.ratelimit import parse_ratelimit
from sluice.types import FLUSH, ChatRequest, ChatResponse, EventStream, Finish, StreamStart
from sluice.wire.openai.request import encode_request
from sluice.wire.openai.response import decode_response
from sluice.wire.openai.stream import ChunkDecoder


class OpenAIProvider:
    def __init__(self, name: str, cfg: OpenAIProviderConfig) -> None:
        self.name = name
        self._cfg = cfg
        self._url = cfg.api_base.rstrip("/") + "/chat/completions"
        self._headers = {"content-type": "application/json", **cfg.headers}
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if key:
            self._headers["authorization"] = f"Bearer {key}"
        self._client = make_transport(cfg.transport, name, cfg.max_connections)
        self._forward = HeaderFilter(cfg.forward_headers)

    def _body(self, req: ChatRequest, dep: Deployment) -> bytes:
        body = encode_request(
            req,
            dep.model,
            max_tokens_param=self._cfg.max_tokens_param,
            same_wire=req.meta.wire == "openai",
        )
        return orjson.dumps(body)

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        headers, body = await self._client.post(
            self._url,
            upstream_headers(self._headers, self._forward, req.meta),
            self._body(req, dep),
            dep.timeouts,
            dep.id,
        )
        resp = decode_response(body)
        resp.ratelimit = parse_ratelimit(headers)
        return resp

    async def stream(self, req: ChatRequest, dep: Deployment) -> EventStream:
        async with self._client.open_stream(
            self._url,
            upstream_headers(self._headers, self._forward, req.meta),
            self._body(req, dep),
            dep.timeouts,
            dep.id,
        ) as (headers, events):
            decoder = ChunkDecoder()
            finished = False
            async for event in events:
                if event is READ_BOUNDARY:
                    yield FLUSH
                    continue
                if event.data == "[DONE]":
                    break
                for out in decoder.feed(parse_event_json(event, dep.id)):
                    if isinstance(out, StreamStart):
                        out.ratelimit = parse_ratelimit(headers)
                    elif isinstance(out, Finish):
                        finished = True
                    yield out
            if not finished:
                raise UpstreamConnectError(
                    f"upstream {dep.id} ended the stream before the answer finished",
                    deployment=dep.id,
                )

    async def close(self) -> None:
        await self._client.close()
