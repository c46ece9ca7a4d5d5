"""`POST /v1/messages/count_tokens`: Anthropic's token counting endpoint, answered locally.

The body is a Messages request without `max_tokens`; the answer is `{"input_tokens": N}`
counted the way the token-policy stage counts before a call (`sluice.context.tokens`): the
model's own encoding for OpenAI models, an o200k count with a margin for Claude (no
offline Claude tokenizer exists), the simulator's estimator otherwise — corrected by what
the provider has been reporting for that model (`Calibration`). `x-sluice-token-count`
says `exact` or `estimate`; a Claude count is always an estimate. No upstream call is made
and nothing is charged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from sluice.context.tokens import count_request, prepare
from sluice.edge.body import read_json
from sluice.types import CallMeta
from sluice.wire.anthropic.request import decode_request

if TYPE_CHECKING:
    from sluice.gateway import Gateway


def upstream_model(gateway: Gateway, name: str) -> str:
    """The upstream model a public name (or a route's default target) is counted for."""
    route = gateway.config.routes.get(name)
    if route is not None:
        name = route.default
    return gateway.runtime.deployments_for(name)[0].model  # 404 for an unknown model


class CountTokensAPI:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def handle(self, request: web.Request) -> web.Response:
        gateway = self.gateway
        identity = await gateway.authenticate(request.headers)
        server = gateway.config.server
        body: dict[str, Any] = await read_json(request, server.max_body_bytes, server.edge)
        body = {**body, "max_tokens": 1}  # the one field counting does not need
        body.pop("stream", None)
        chat = decode_request(body, CallMeta(wire="anthropic"))
        gateway.governance.auth.admit(identity, chat)  # the key's model allow-list holds
        model = upstream_model(gateway, chat.model)
        await prepare(model)  # loads the encoding off the event loop, once
        count = count_request(chat, model)
        tokens = count.tokens
        if not count.exact and gateway.tokens is not None:  # the token policy's calibration
            tokens = gateway.tokens.calibration.correct(model, count)
        return web.Response(
            body=orjson.dumps({"input_tokens": tokens}),
            content_type="application/json",
            headers={"x-sluice-token-count": "exact" if count.exact else "estimate"},
        )
