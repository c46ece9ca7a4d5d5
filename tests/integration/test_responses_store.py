"""Stored Responses answers: per tenant, on SQLite and on a shared PostgreSQL; and the
tenant boundary over HTTP with virtual keys (another tenant's id is a 404)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from sluice.web.responses_store import SqlResponseStore, StoredResponse
from tests.governance_rig import create_key, gateway, keyed_config, postgres_schema, set_env

pytestmark = pytest.mark.integration


def answer(response_id: str, tenant: str, created_at: float | None = None) -> StoredResponse:
    return StoredResponse(
        response_id,
        tenant,
        time.time() if created_at is None else created_at,
        {"id": response_id, "object": "response", "output": []},
        [{"type": "message", "role": "user", "content": "hi"}],
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'responses.db'}"
        return
    with postgres_schema() as pg:
        yield pg


async def test_answers_are_scoped_by_tenant(url: str) -> None:
    store = SqlResponseStore(url, ttl_s=3600)
    await store.start()
    try:
        await store.put(answer("resp_1", "acme"))
        got = await store.get("acme", "resp_1")
        assert got is not None and got.items[0]["content"] == "hi"
        assert await store.get("globex", "resp_1") is None  # another tenant: not found
        assert await store.delete("globex", "resp_1") is False
        assert await store.get("acme", "resp_1") is not None  # ... and not deleted either
        assert await store.delete("acme", "resp_1") is True
        assert await store.get("acme", "resp_1") is None
        assert await store.get("acme", "x" * 10_000) is None  # an absurd id is just unknown
    finally:
        await store.close()


async def test_expired_answers_are_gone(url: str) -> None:
    store = SqlResponseStore(url, ttl_s=60)
    await store.start()
    try:
        await store.put(answer("resp_old", "acme", created_at=time.time() - 120))
        await store.put(answer("resp_new", "acme"))
        assert await store.get("acme", "resp_old") is None
        await store.close()
        store = SqlResponseStore(url, ttl_s=60)
        await store.start()  # purges expired rows
        t = store.table
        with store.engine.connect() as conn:
            ids = [row[0] for row in conn.execute(t.select().with_only_columns(t.c.id))]
        assert ids == ["resp_new"]
    finally:
        await store.close()


async def test_replicas_starting_together_share_one_table(url: str) -> None:
    """Four replicas start at once on an empty database; each sees the others' answers."""
    stores = [SqlResponseStore(url, ttl_s=3600) for _ in range(4)]
    try:
        await asyncio.gather(*(s.start() for s in stores))
        await asyncio.gather(*(s.put(answer(f"resp_{i}", "acme")) for i, s in enumerate(stores)))
        for store in stores:
            found = [await store.get("acme", f"resp_{i}") for i in range(4)]
            assert all(f is not None for f in found)
    finally:
        for store in stores:
            await store.close()


async def test_a_read_waits_for_a_reserved_write(tmp_path: Path) -> None:
    store = SqlResponseStore(f"sqlite:///{tmp_path / 'r.db'}", ttl_s=3600)
    await store.start()
    try:
        store.reserve("acme", "resp_soon")
        reader = asyncio.create_task(store.get("acme", "resp_soon"))
        await asyncio.sleep(0.05)
        assert not reader.done()  # waits for the write instead of answering "not found"
        await store.put(answer("resp_soon", "acme"))
        assert (await asyncio.wait_for(reader, 10)) is not None
    finally:
        await store.close()


async def test_another_tenants_response_is_a_404_over_http(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    config = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}")
    data = config.model_dump()
    data["endpoints"]["responses"]["store_url"] = f"sqlite:///{tmp_path / 'responses.db'}"
    async with gateway(type(config).model_validate(data)) as (base, _):
        async with aiohttp.ClientSession() as http:
            acme = (await create_key(http, base, tenant="acme"))["key"]
            globex = (await create_key(http, base, tenant="globex"))["key"]
        mine = openai.AsyncOpenAI(base_url=base + "/v1", api_key=acme, max_retries=0)
        theirs = openai.AsyncOpenAI(base_url=base + "/v1", api_key=globex, max_retries=0)
        stranger = openai.AsyncOpenAI(base_url=base + "/v1", api_key="sk-sluice-no", max_retries=0)
        try:
            first = await mine.responses.create(model="gpt-4o-mini", input="secret plans")
            calls: list[Any] = [
                theirs.responses.retrieve(first.id),
                theirs.responses.delete(first.id),
                theirs.responses.create(
                    model="gpt-4o-mini", input="go on", previous_response_id=first.id
                ),
            ]
            for call in calls:
                with pytest.raises(openai.NotFoundError) as caught:
                    await call
                assert "found" in caught.value.body["message"]  # type: ignore[index]
                assert "secret" not in str(caught.value.body)
            again = await mine.responses.retrieve(first.id)  # still there for its owner
            assert again.output_text == first.output_text
            with pytest.raises(openai.AuthenticationError):
                await stranger.responses.retrieve(first.id)
        finally:
            for client in (mine, theirs, stranger):
                await client.close()


async def test_a_call_that_dies_after_finishing_never_leaves_readers_waiting(
    tmp_path: Path,
) -> None:
    """The answer finished (its id reserved for the write) but the handler then failed, as
    when the client leaves during the last write: reads of the id must not wait for a write
    that never comes."""
    from types import SimpleNamespace

    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    from sluice.edge.config import EdgeConfig
    from sluice.identity import Identity
    from sluice.web.responses import _CALL, ResponsesAPI

    store = SqlResponseStore(f"sqlite:///{tmp_path / 'r.db'}", ttl_s=3600)
    await store.start()

    ids: list[str] = []

    async def serve(request: web.Request) -> web.StreamResponse:
        call = _CALL.get()
        assert call is not None
        ids.append(call.id)
        call.finished({"id": call.id, "output": []})
        raise ConnectionResetError("client went away")

    async def authenticate(headers: Any) -> Identity:
        return Identity.anonymous()

    server = SimpleNamespace(max_body_bytes=1 << 20, edge=EdgeConfig())
    gateway: Any = SimpleNamespace(authenticate=authenticate, config=SimpleNamespace(server=server))
    api = ResponsesAPI(gateway, store, serve)
    request = make_mocked_request("POST", "/v1/responses")
    request._read_bytes = b'{"model": "m", "input": "hi"}'
    try:
        with pytest.raises(ConnectionResetError):
            await api.create(request)
        assert store._pending == {}
        started = time.perf_counter()
        assert await store.get("default", ids[0]) is None
        assert time.perf_counter() - started < 5
    finally:
        await store.close()


async def test_keys_limits_and_budgets_hold_on_the_new_endpoints(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Responses calls pass the same limits and budgets as chat calls (same pipeline); the
    key's model allow-list holds for embeddings and token counting too."""
    set_env(monkeypatch)
    config = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}")
    data = config.model_dump()
    data["limits"] = {"enabled": True}
    data["endpoints"]["responses"]["store_url"] = f"sqlite:///{tmp_path / 'responses.db'}"
    async with (
        gateway(type(config).model_validate(data)) as (base, _),
        aiohttp.ClientSession() as http,
    ):
        tight = await create_key(
            http,
            base,
            limits={"rpm": 2},
            budgets=[{"period": "weekly", "tokens": 100_000}],
            allowed_models=["gpt-4o-mini"],
        )
        oai = openai.AsyncOpenAI(base_url=base + "/v1", api_key=tight["key"], max_retries=0)
        try:
            await oai.responses.create(model="gpt-4o-mini", input="one")
            events = await oai.responses.create(model="gpt-4o-mini", input="two", stream=True)
            assert [e.type async for e in events][-1] == "response.completed"
            with pytest.raises(openai.RateLimitError) as limited:
                await oai.responses.create(model="gpt-4o-mini", input="three")
            assert limited.value.response.headers["x-ratelimit-limit-requests"] == "2"
            auth = {"authorization": f"Bearer {tight['key']}"}
            async with http.get(base + "/v1/sluice/usage", headers=auth) as resp:
                usage = await resp.json()
            assert usage["limits"][0]["used"] == 2
            assert usage["budgets"][0]["spent"] > 0  # both answers' tokens were charged
            with pytest.raises(openai.PermissionDeniedError):
                await oai.embeddings.create(model="local-minilm", input="x")
            body = {"model": "claude-haiku", "messages": [{"role": "user", "content": "x"}]}
            async with http.post(
                base + "/v1/messages/count_tokens",
                json=body,
                headers={"x-api-key": tight["key"]},
            ) as resp:
                assert resp.status == 403
                assert (await resp.json())["error"]["type"] == "permission_error"
            async with http.post(base + "/v1/messages/count_tokens", json=body) as resp:
                assert resp.status == 401
                assert (await resp.json())["type"] == "error"
        finally:
            await oai.close()
