"""`/v1/vector_stores`: OpenAI's Vector Stores API over the gateway's `RetrievalService`.

Routes (all tenant-scoped; another tenant's id answers the same 404 as an unknown one):
stores `POST/GET /v1/vector_stores`, `GET/POST/DELETE /v1/vector_stores/{id}`; files
`POST/GET .../files`, `GET/POST/DELETE .../files/{file_id}`, `GET .../files/{file_id}/content`;
batches `POST .../file_batches`, `GET .../file_batches/{id}`, `POST .../file_batches/{id}/cancel`,
`GET .../file_batches/{id}/files`; and `POST .../search`. Bodies are read with the edge's
bounded reader; bad input is a 400 in OpenAI's error shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from sluice.edge.body import read_json
from sluice.errors import InvalidRequestError, NotFoundError
from sluice.web.appkeys import GATEWAY

if TYPE_CHECKING:
    from sluice.retrieval.service import RetrievalService


def _service(request: web.Request) -> RetrievalService:
    service = request.app[GATEWAY].retrieval
    if service is None:
        raise NotFoundError("vector stores are not enabled on this gateway (retrieval.enabled)")
    return service


async def _tenant(request: web.Request) -> str:
    return (await request.app[GATEWAY].authenticate(request.headers)).tenant


async def _body(request: web.Request) -> dict[str, Any]:
    cfg = request.app[GATEWAY].config.server
    if not request.can_read_body:
        return {}
    return await read_json(request, cfg.max_body_bytes, cfg.edge)


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def _page_args(request: web.Request) -> tuple[int, str, str | None, str | None]:
    q = request.query
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        raise InvalidRequestError("limit must be an integer", param="limit") from None
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("order must be asc or desc", param="order")
    return limit, order, q.get("after"), q.get("before")


def _ids(request: web.Request, *names: str) -> list[str]:
    return [request.match_info[n][:160] for n in names]


async def create_store(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    return _json(await service.create_store(tenant, await _body(request)))


async def list_stores(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    return _json(await service.list_stores(tenant, *_page_args(request)))


async def get_store(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    return _json(await service.get_store(tenant, *_ids(request, "vs")))


async def update_store(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    (vs,) = _ids(request, "vs")
    return _json(await service.update_store(tenant, vs, await _body(request)))


async def delete_store(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    return _json(await service.delete_store(tenant, *_ids(request, "vs")))


async def add_file(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    (vs,) = _ids(request, "vs")
    return _json(await service.add_file(tenant, vs, await _body(request)))


async def list_files(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    (vs,) = _ids(request, "vs")
    return _json(
        await service.list_files(tenant, vs, *_page_args(request), request.query.get("filter"))
    )


async def get_file(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    return _json(await service.get_file(tenant, *_ids(request, "vs", "file")))


async def update_file(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    vs, file_id = _ids(request, "vs", "file")
    return _json(await service.update_file(tenant, vs, file_id, await _body(request)))


async def delete_file(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    return _json(await service.delete_file(tenant, *_ids(request, "vs", "file")))


async def file_content(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    return _json(await service.file_content(tenant, *_ids(request, "vs", "file")))


async def create_batch(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    (vs,) = _ids(request, "vs")
    return _json(await service.create_batch(tenant, vs, await _body(request)))


async def get_batch(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    return _json(await service.get_batch(tenant, *_ids(request, "vs", "batch")))


async def cancel_batch(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    return _json(await service.cancel_batch(tenant, *_ids(request, "vs", "batch")))


async def batch_files(request: web.Request) -> web.Response:
    service, tenant = _service(request), await _tenant(request)
    vs, batch = _ids(request, "vs", "batch")
    await service.get_batch(tenant, vs, batch)
    return _json(
        await service.list_files(
            tenant, vs, *_page_args(request), request.query.get("filter"), batch
        )
    )


async def search(request: web.Request) -> web.Response:
    """OpenAI's `vector_store.search_results.page`. `rewrite_query` is accepted, not applied."""
    service, tenant = _service(request), await _tenant(request)
    (vs,) = _ids(request, "vs")
    body = await _body(request)
    query: Any = body.get("query")
    if isinstance(query, list):  # the API accepts a list of queries: searched as one text
        if not all(isinstance(q, str) for q in query):
            raise InvalidRequestError("query must be a string or a list of strings", param="query")
        query = " ".join(query)
    outcome = await service.search(
        tenant,
        [vs],
        query,
        body.get("max_num_results", 10),
        body.get("filters"),
        body.get("ranking_options"),
    )
    return _json(
        {
            "object": "vector_store.search_results.page",
            "search_query": query,
            "data": [service.result_object(r) for r in outcome.results],
            "has_more": False,
            "next_page": None,
        }
    )


def install(app: web.Application) -> None:
    r = app.router
    base = "/v1/vector_stores"
    r.add_post(base, create_store)
    r.add_get(base, list_stores)
    r.add_get(base + "/{vs}", get_store)
    r.add_post(base + "/{vs}", update_store)
    r.add_delete(base + "/{vs}", delete_store)
    r.add_post(base + "/{vs}/files", add_file)
    r.add_get(base + "/{vs}/files", list_files)
    r.add_get(base + "/{vs}/files/{file}", get_file)
    r.add_post(base + "/{vs}/files/{file}", update_file)
    r.add_delete(base + "/{vs}/files/{file}", delete_file)
    r.add_get(base + "/{vs}/files/{file}/content", file_content)
    r.add_post(base + "/{vs}/file_batches", create_batch)
    r.add_get(base + "/{vs}/file_batches/{batch}", get_batch)
    r.add_post(base + "/{vs}/file_batches/{batch}/cancel", cancel_batch)
    r.add_get(base + "/{vs}/file_batches/{batch}/files", batch_files)
    r.add_post(base + "/{vs}/search", search)
