"""`POST /v1/messages`: the Anthropic Messages front end."""

from __future__ import annotations

from sluice.errors import SluiceError
from sluice.frontends.base import Frontend
from sluice.types import ChatRequest
from sluice.wire.anthropic.request import decode_request
from sluice.wire.anthropic.response import encode_response
from sluice.wire.anthropic.stream import EventEncoder


def _encoder(req: ChatRequest) -> EventEncoder:
    return EventEncoder(req.model, req)


def _error(err: SluiceError) -> dict[str, object]:
    return err.anthropic_body()


ANTHROPIC_FRONTEND = Frontend(
    "anthropic", decode_request, encode_response, _encoder, _error, request_id_header="request-id"
)
