"""The endpoints beyond the two chat front ends, registered on the gateway's app in one call:
`/v1/responses` (+ GET/DELETE of stored answers), `/v1/embeddings`,
`/v1/messages/count_tokens`. Each can be switched off in `endpoints:`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from sluice.frontends.base import Frontend
from sluice.web import responses
from sluice.web.count_tokens import CountTokensAPI
from sluice.web.embeddings import EmbeddingsAPI

if TYPE_CHECKING:
    from sluice.gateway import Gateway


def install(
    app: web.Application,
    gateway: Gateway,
    chat_endpoint: Callable[[Frontend], responses.WebHandler],
) -> None:
    """`chat_endpoint` builds the server's chat handler for a front end (the Responses API
    runs through it, so through the whole pipeline)."""
    responses.install(app, gateway, chat_endpoint)
    config = gateway.config.endpoints
    if config.embeddings.enabled:
        embeddings = EmbeddingsAPI(gateway, config.embeddings)
        app.router.add_post("/v1/embeddings", embeddings.handle)
        app.router.add_post("/embeddings", embeddings.handle)

        async def _close(_app: web.Application) -> None:
            await embeddings.close()

        app.on_cleanup.append(_close)
    if config.count_tokens:
        app.router.add_post("/v1/messages/count_tokens", CountTokensAPI(gateway).handle)
