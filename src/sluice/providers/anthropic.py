"""Anthropic Messages over HTTP (`x-api-key`, `anthropic-version`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import orjson

from sluice.config import AnthropicProviderConfig
from sluice.cost.prices import default_price_table
from sluice.errors import UpstreamConnectError
from sluice.providers.base import Deployment
from sluice.providers.forwarding import HeaderFilter, upstream_headers
from sluice.providers.http import make_transport, parse_event_json
from sluice.providers.prompt_cache import DEFAULT_MIN_TOKENS, PrefixMemory, add_breakpoints
from sluice.providers.ratelimit import parse_ratelimit
from sluice.types import (
    FLUSH,
    BatchStream,
    ChatRequest,
    ChatResponse,
    EventStream,
    StreamEvent,
    StreamStart,
)
from sluice.wire.anthropic.request import DEFAULT_MAX_TOKENS, encode_request
from sluice.wire.anthropic.response import decode_response
from sluice.wire.anthropic.stream import EventDecoder


class AnthropicProvider:
    def __init__(self, name: str, cfg: AnthropicProviderConfig) -> None:
        self.name = name
        self._url = cfg.api_base.rstrip("/") + "/v1/messages"
        self._structured_output = cfg.structured_output
        self._headers = {
            "content-type": "application/json",
            "anthropic-version": cfg.anthropic_version,
            **cfg.headers,
        }
        key = os.environ.get(cfg.api_key_env) if cfg.api_key_env else None
        if key:
            self._headers["x-api-key"] = key
        self._client = make_transport(cfg.transport, name, cfg.max_connections)
        self._forward = HeaderFilter(cfg.forward_headers)
        self._prompt_caching = cfg.prompt_caching
        self._prefixes = PrefixMemory()  # prompt prefixes seen lately (repeat detection)
        self._min_cache_tokens: dict[str, int | None] = {}  # deployment id → minimum or off

    def _cache_minimum(self, dep: Deployment) -> int | None:
        """The prefix length past which breakpoints are added; None when caching is off."""
        if dep.id not in self._min_cache_tokens:
            mode = dep.prompt_caching or self._prompt_caching
            price = default_price_table().find("anthropic", dep.model)
            table = price.min_cache_tokens if price is not None else None
            self._min_cache_tokens[dep.id] = (
                None if mode == "off" else dep.min_cache_tokens or table or DEFAULT_MIN_TOKENS
            )
        return self._min_cache_tokens[dep.id]

    def _request_headers(self, req: ChatRequest) -> dict[str, str]:
        """Provider headers + forwarded ones, and the caller's `anthropic-beta` merged with
        the configured one: beta body fields only work with the header that enables them."""
        headers = upstream_headers(self._headers, self._forward, req.meta)
        beta = req.meta.headers.get("anthropic-beta")
        if not beta:
            return headers
        own = [k for k in headers if k.lower() == "anthropic-beta"]
        names = [*(n for k in own for n in headers[k].split(",")), *beta.split(",")]
        merged = ",".join(dict.fromkeys(n.strip() for n in names if n.strip()))
        out = {k: v for k, v in headers.items() if k not in own}
        out["anthropic-beta"] = merged
        return out

    def _body(self, req: ChatRequest, dep: Deployment) -> bytes:
        default_max = min(dep.max_output_tokens or DEFAULT_MAX_TOKENS, DEFAULT_MAX_TOKENS)
        body = encode_request(
            req,
            dep.model,
            default_max_tokens=default_max,
            same_wire=req.meta.wire == "anthropic",
            structured_output=self._structured_output,
        )
        minimum = self._cache_minimum(dep)
        if minimum is not None:
            add_breakpoints(body, minimum, self._prefixes)
        return orjson.dumps(body)

    async def complete(self, req: ChatRequest, dep: Deployment) -> ChatResponse:
        headers, body = await self._client.post(
            self._url,
            self._request_headers(req),
            self._body(req, dep),
            dep.timeouts,
            dep.id,
        )
        resp = decode_response(body)
        resp.ratelimit = parse_ratelimit(headers)
        return resp

    def stream(self, req: ChatRequest, dep: Deployment) -> EventStream:
        return BatchStream(self._stream(req, dep))

    async def _stream(self, req: ChatRequest, dep: Deployment) -> AsyncIterator[list[StreamEvent]]:
        """The neutral events of each network read in one list, FLUSH last (`BatchStream`)."""
        async with self._client.open_stream(
            self._url,
            self._request_headers(req),
            self._body(req, dep),
            dep.timeouts,
            dep.id,
        ) as (headers, batches):
            decoder = EventDecoder()
            stopped = False
            async for batch in batches:
                out: list[StreamEvent] = []
                try:
                    for event in batch:
                        data = parse_event_json(event, dep.id)
                        if isinstance(data, dict) and data.get("type") == "message_stop":
                            stopped = True
                            break
                        for item in decoder.feed(data):
                            if isinstance(item, StreamStart):
                                item.ratelimit = parse_ratelimit(headers)
                            out.append(item)
                except Exception:
                    if out:  # what arrived before the bad event is delivered first
                        yield out
                    raise
                if stopped:
                    if out:
                        yield out
                    break
                out.append(FLUSH)
                yield out
            if not stopped:
                raise UpstreamConnectError(
                    f"upstream {dep.id} ended the stream before message_stop",
                    deployment=dep.id,
                )

    async def close(self) -> None:
        await self._client.close()
