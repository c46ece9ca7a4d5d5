"""OpenAI Chat Completions over HTTP; also every OpenAI-compatible server via `api_base`."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import AsyncIterator

import orjson

from sluice.collect import StreamCollector
from sluice.config import OpenAIProviderConfig
from sluice.errors import UpstreamConnectError
from sluice.providers.base import Deployment
from sluice.providers.forwarding import HeaderFilter, upstream_headers
from sluice.providers.http import event_not_json, make_transport
from sluice.providers.ratelimit import parse_ratelimit
from sluice.types import (
    FLUSH,
    BatchStream,
    ChatRequest,
    ChatResponse,
    EventStream,
    StreamEvent,
)
from sluice.wire.openai.request import encode_request
from sluice.wire.openai.response import decode_response
from sluice.wire.openai.stream import ChunkDecoder
from sluice.wire.stops import cut_at_stops

# Model families that refuse `max_tokens` and want `max_completion_tokens`: o1/o3/o4…,
# gpt-5…, with or without a vendor prefix (`openai/o3-mini`, Azure deployment names aside).
_REASONING_FAMILY = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)", re.IGNORECASE)


def max_tokens_param(setting: str, model: str, req: ChatRequest) -> str:
    """The body key for the output cap. An explicit setting wins; `auto` picks
    `max_completion_tokens` for reasoning families and when an OpenAI caller used that name
    itself, else `max_tokens` (what most compatible servers know)."""
    if setting != "auto":
        return setting
    if _REASONING_FAMILY.match(model) or req.meta.max_tokens_field == "max_completion_tokens":
        return "max_completion_tokens"
    return "max_tokens"


def _sluice_stops(req: ChatRequest) -> bool:
    """An Anthropic caller's stop sequences are applied by Sluice (it must name the match)."""
    return req.meta.wire == "anthropic" and bool(req.stop)


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
            max_tokens_param=max_tokens_param(self._cfg.max_tokens_param, dep.model, req),
            same_wire=req.meta.wire == "openai",
            send_stop=not _sluice_stops(req),
        )
        return orjson.dumps(body)

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        if _sluice_stops(req):  # watch the text as it comes: see wire/stops.py
            collector = StreamCollector()
            events = self.stream(dataclasses.replace(req, stream=True), dep)
            async for event in events:
                collector.add(event)
            return collector.response()
        return await self._complete(req, dep)

    def stream(self, req: ChatRequest, dep: Deployment) -> EventStream:
        events = BatchStream(self._stream(req, dep))
        return cut_at_stops(events, req) if _sluice_stops(req) else events

    async def _complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
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

    async def _stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[list[StreamEvent]]:
        """The neutral events of each network read in one list, FLUSH last (`BatchStream`)."""
        async with self._client.open_stream(
            self._url,
            upstream_headers(self._headers, self._forward, req.meta),
            self._body(req, dep),
            dep.timeouts,
            dep.id,
        ) as (headers, batches):
            decoder = ChunkDecoder(parse_ratelimit(headers))
            done = False
            async for batch in batches:
                out: list[StreamEvent] = []
                try:
                    for event in batch:
                        if event.data == "[DONE]":
                            done = True
                            break
                        # `parse_event_json` inline: one call fewer per event
                        out += decoder.feed(orjson.loads(event.data))
                except Exception as exc:
                    if out:  # what arrived before the bad event is delivered first
                        yield out
                    if isinstance(exc, orjson.JSONDecodeError):
                        raise event_not_json(dep.id) from exc
                    raise
                if done:
                    if out:
                        yield out
                    break
                out.append(FLUSH)
                yield out
            if not decoder.finished:
                raise UpstreamConnectError(
                    f"upstream {dep.id} ended the stream before the answer finished",
                    deployment=dep.id,
                )

    async def close(self) -> None:
        await self._client.close()
