"""Reading a JSON object body for the endpoints outside the chat handler."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from sluice.errors import InvalidRequestError, RequestTooLargeError


async def read_json(request: web.Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object; 413 over the limit, 400 for anything but an object."""
    if request.content_length is not None and request.content_length > limit:
        raise RequestTooLargeError(f"request body is over the limit of {limit} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RequestTooLargeError(f"request body is over the limit of {limit} bytes") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    return body
