"""`POST /v1/chat/completions`: the OpenAI Chat Completions front end."""

from __future__ import annotations

from sluice.errors import SluiceError
from sluice.frontends.base import Frontend
from sluice.types import ChatRequest
from sluice.wire.openai.request import decode_request
from sluice.wire.openai.response import encode_response
from sluice.wire.openai.stream import ChunkEncoder


def _encoder(req: ChatRequest) -> ChunkEncoder:
    return ChunkEncoder(req.model, req.meta.include_usage)


def _error(err: SluiceError) -> dict[str, object]:
    return err.openai_body()


OPENAI_FRONTEND = Frontend("openai", decode_request, encode_response, _encoder, _error)
