"""The shape every front end has: decode a request, encode an answer, a stream, an error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sluice.errors import SluiceError
from sluice.types import CallMeta, ChatRequest, ChatResponse, StreamEvent, WireFormat


class StreamEncoder(Protocol):
    def encode(self, event: StreamEvent) -> bytes: ...

    def close(self) -> bytes: ...

    def error(self, err: SluiceError) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Frontend:
    wire: WireFormat
    decode_request: Callable[[dict[str, Any], CallMeta], ChatRequest]
    encode_response: Callable[[ChatResponse, str], dict[str, Any]]
    stream_encoder: Callable[[ChatRequest], StreamEncoder]
    error_body: Callable[[SluiceError], dict[str, Any]]
    # The header this API's SDK reads the request id from (`_request_id`).
    request_id_header: str = "x-request-id"
