"""`/v1/files`: OpenAI's Files API over the gateway's `FileStore` (`sluice.files.store`).

`POST /v1/files` (multipart: `file`, `purpose`), `GET /v1/files` (cursor page),
`GET /v1/files/{id}`, `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`. The caller
authenticates like any data-plane call; every lookup is under its tenant, so another
tenant's file answers the same 404 as an unknown id. The upload is read part by part and
stops at `files.max_bytes` (413), whatever the Content-Length says; a body that is not
multipart, a missing part or an unknown purpose is a 400 in OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import orjson
from aiohttp import BodyPartReader, web

from sluice.errors import (
    InvalidRequestError,
    NotFoundError,
    RequestTimeoutError,
    RequestTooLargeError,
    ServiceUnavailableError,
)
from sluice.files.store import UPLOAD_PURPOSES, FileStore
from sluice.web.appkeys import GATEWAY

if TYPE_CHECKING:
    from sluice.files.config import FilesConfig

_CHUNK = 256 * 1024
_MAX_FIELD = 1024  # `purpose` and other small text fields


def _store(request: web.Request) -> FileStore:
    store = request.app[GATEWAY].files
    if store is None:
        raise NotFoundError("files are not enabled on this gateway (files.enabled)")
    return store


async def _tenant(request: web.Request) -> str:
    return (await request.app[GATEWAY].authenticate(request.headers)).tenant


def not_found(file_id: str) -> NotFoundError:
    return NotFoundError(f"No such File object: {file_id[:64]}", param="file_id")


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await part.read_chunk(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise RequestTooLargeError(f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _clean_name(name: str) -> str:
    """The filename as given, but printable: `filename*=UTF-8''a%00b` decodes to a NUL
    (PostgreSQL refuses it in text: a 500), %0A to a newline, bad UTF-8 to surrogates.
    Such characters become `_`; the name is never used as a path (blobs are named by id)."""
    return "".join(c if c.isprintable() else "_" for c in name)


async def _read_upload(request: web.Request, cfg: FilesConfig) -> tuple[str, str, bytes]:
    """(filename, purpose, data) from the multipart body."""
    if not request.content_type.startswith("multipart/"):
        raise InvalidRequestError("expected a multipart/form-data body with `file` and `purpose`")
    filename: str | None = None
    purpose: str | None = None
    data: bytes | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise InvalidRequestError("nested multipart bodies are not supported")
            if part.name == "file":
                data = await _read_part(part, cfg.max_bytes, "the file")
                filename = _clean_name(part.filename or "upload")[: cfg.max_filename_chars]
            elif part.name == "purpose":
                purpose = (await _read_part(part, _MAX_FIELD, "purpose")).decode(errors="replace")
            else:  # e.g. expires_after[...]: read and ignore, bounded
                await _read_part(part, _MAX_FIELD, f"field {str(part.name)[:40]!r}")
    except (ValueError, AssertionError) as exc:  # aiohttp's multipart parser errors
        raise InvalidRequestError(f"malformed multipart body: {str(exc)[:200]}") from None
    if data is None or filename is None:
        raise InvalidRequestError("missing the `file` part", param="file")
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequestError(
            f"purpose must be one of {', '.join(UPLOAD_PURPOSES)}", param="purpose"
        )
    return filename, purpose, data


async def create(request: web.Request) -> web.Response:
    store = _store(request)
    tenant = await _tenant(request)
    cfg = request.app[GATEWAY].config.files
    length = request.content_length
    if length is not None and length > cfg.max_bytes + 64 * 1024:
        raise RequestTooLargeError(f"the upload is {length} bytes; the limit is {cfg.max_bytes}")
    timeout = request.app[GATEWAY].config.server.edge.body_timeout_s
    try:
        async with asyncio.timeout(max(timeout, 60.0)):
            filename, purpose, data = await _read_upload(request, cfg)
    except TimeoutError:
        raise RequestTimeoutError("the upload did not arrive in time") from None
    if purpose == "batch":
        await asyncio.to_thread(_check_jsonl, data)  # up to max_bytes: off the event loop
    obj = await store.create(tenant, filename, purpose, data)
    return _json(obj.to_openai())


def _check_jsonl(data: bytes) -> None:
    """A batch file must be UTF-8 text; its lines are checked when a batch uses it (each
    bad line is reported with its number in the batch's errors), as OpenAI does."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("a batch file must be UTF-8 JSONL", param="file") from None


async def retrieve(request: web.Request) -> web.Response:
    store = _store(request)
    file_id = request.match_info["file_id"]
    obj = await store.get(await _tenant(request), file_id)
    if obj is None:
        raise not_found(file_id)
    return _json(obj.to_openai())


async def content(request: web.Request) -> web.Response:
    store = _store(request)
    file_id = request.match_info["file_id"]
    data = await store.content(await _tenant(request), file_id)
    if data is None:
        raise not_found(file_id)
    return web.Response(body=data, content_type="application/octet-stream")


async def delete(request: web.Request) -> web.Response:
    store = _store(request)
    file_id = request.match_info["file_id"]
    if not await store.delete(await _tenant(request), file_id):
        raise not_found(file_id)
    return _json({"id": file_id, "object": "file", "deleted": True})


async def list_files(request: web.Request) -> web.Response:
    store = _store(request)
    tenant = await _tenant(request)
    query = request.query
    try:
        limit = int(query.get("limit", "10000"))
    except ValueError:
        raise InvalidRequestError("limit must be an integer", param="limit") from None
    if not 1 <= limit <= 10_000:
        raise InvalidRequestError("limit must be between 1 and 10000", param="limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("order must be asc or desc", param="order")
    purpose = query.get("purpose") or None
    page, more = await store.list(
        tenant, purpose, limit, query.get("after") or None, "asc" if order == "asc" else "desc"
    )
    data = [f.to_openai() for f in page]
    return _json(
        {
            "object": "list",
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    )


def _json(body: object) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def store_unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError("the file store is unreachable", headers={"retry-after": "1"})


def install(app: web.Application) -> None:
    """The routes (each answers 404 when `files.enabled` is false)."""
    app.router.add_post("/v1/files", create)
    app.router.add_get("/v1/files", list_files)
    app.router.add_get("/v1/files/{file_id}", retrieve)
    app.router.add_get("/v1/files/{file_id}/content", content)
    app.router.add_delete("/v1/files/{file_id}", delete)
