"""Read a request body into a JSON object without letting the body hurt the process.

Bounded in every dimension a client controls: bytes on the wire (`client_max_size`), bytes
after decompression (a gzip bomb stops at the same limit), time (`body_timeout_s`), JSON
nesting depth (orjson's encoder stops at 255 levels: a deeper body used to fail later, when
the request was re-encoded, as a 500), and integer range (a 20-digit `max_tokens` reached
Redis as "Integer exceeds 64-bit range", a 500). Everything is a 4xx in the caller's format.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

import orjson
from aiohttp import web

from sluice.edge.config import EdgeConfig
from sluice.errors import (
    InvalidRequestError,
    RequestTimeoutError,
    RequestTooLargeError,
    SluiceError,
    UnsupportedMediaTypeError,
)

_INT64 = 2**63
# zlib window bits: 16+15 reads a gzip member, 15 a zlib stream, -15 raw deflate.
_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


# Why a request's body could not be read (too large, too slow), kept for a second read.
_CUT_SHORT = web.RequestKey("sluice_body_cut_short", SluiceError)


async def read_json(request: web.Request, limit: int, cfg: EdgeConfig) -> dict[str, Any]:
    """The request's JSON object, bounded (size, arrival time, encoding, depth).

    May be called twice for one request (the Responses API reads the body before the chat
    handler does): a body that was too large or too slow cannot be read again, so the second
    call raises the first one's error instead of waiting for bytes that are gone — and the
    chat handler records the call like any other failure."""
    cut_short = request.get(_CUT_SHORT)
    if cut_short is not None:
        raise cut_short
    try:
        raw = await _read_raw(request, limit, cfg)
    except (RequestTooLargeError, RequestTimeoutError) as exc:
        request[_CUT_SHORT] = exc
        raise
    raw = decode_content(raw, request.headers.get("content-encoding", ""), limit)
    if not raw:
        raise InvalidRequestError("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequestError("request body must be a JSON object")
    check_shape(body, cfg.max_json_depth)
    return body


async def _read_raw(request: web.Request, limit: int, cfg: EdgeConfig) -> bytes:
    length = request.content_length
    if length is not None and length > limit:
        raise RequestTooLargeError(f"request body is {length} bytes; the limit is {limit}")
    try:
        async with asyncio.timeout(cfg.body_timeout_s):
            return await request.read()
    except TimeoutError:
        raise RequestTimeoutError(
            f"the request body did not arrive within {cfg.body_timeout_s:g} s"
        ) from None
    except web.HTTPRequestEntityTooLarge:
        raise RequestTooLargeError(f"request body is over the limit of {limit} bytes") from None


def decode_content(raw: bytes, encoding: str, limit: int) -> bytes:
    """The body after its `Content-Encoding` (gzip or deflate), at most `limit` bytes."""
    name = encoding.strip().lower()
    if name in ("", "identity"):
        return raw
    wbits = _WBITS.get(name)
    if wbits is None:
        raise UnsupportedMediaTypeError(
            f"Content-Encoding {encoding[:40]!r} is not supported; use gzip, deflate or none"
        )
    try:
        out = _inflate(raw, wbits, limit)
    except zlib.error:
        if name != "deflate":
            out = None
        else:  # "deflate" is often sent as a raw deflate stream, without the zlib header
            try:
                out = _inflate(raw, -15, limit)
            except zlib.error:
                out = None
    if out is None:
        raise InvalidRequestError(f"the request body is not valid {name} data (Content-Encoding)")
    return out


def _inflate(raw: bytes, wbits: int, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(raw, limit + 1)
    if len(out) > limit:
        raise RequestTooLargeError(f"the decompressed request body is over {limit} bytes")
    if not inflater.eof:
        raise zlib.error("truncated stream")
    return out


def check_shape(body: Any, max_depth: int) -> None:
    """Refuse nesting deeper than `max_depth` and integers outside the signed 64-bit range."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            if type(value) is int and not -_INT64 <= value < _INT64:
                raise InvalidRequestError("a number in the request body is out of range")
            continue
        if depth > max_depth:
            raise InvalidRequestError(f"the request body is nested deeper than {max_depth} levels")
        for child in children:
            if isinstance(child, dict | list) or type(child) is int:
                push((child, depth + 1))
