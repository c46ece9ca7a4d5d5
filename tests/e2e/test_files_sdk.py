"""`/v1/files` through the official `openai` SDK: upload, list, retrieve, content, delete;
tenant isolation with two virtual keys; hostile uploads (no multipart, too large, bad
purpose, not UTF-8) are 4xx in OpenAI's shape; SQLite on disk and PostgreSQL in the DB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from sluice.config import SluiceConfig
from tests.conftest import gateway_config
from tests.governance_rig import create_key, gateway, keyed_config, postgres_schema, set_env

LINES = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'


_OPEN: list[openai.AsyncOpenAI] = []


def _client(base: str, key: str = "sk-none") -> openai.AsyncOpenAI:
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    _OPEN.append(client)
    return client


@pytest.fixture(autouse=True)
async def _close_clients() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().close()


def _with(config: SluiceConfig, **files: Any) -> SluiceConfig:
    data = config.model_dump()
    data["files"].update(files)
    return SluiceConfig.model_validate(data)


async def _round_trip(client: openai.AsyncOpenAI) -> None:
    made = await client.files.create(file=("in.jsonl", LINES), purpose="batch")
    assert made.id.startswith("file-") and made.bytes == len(LINES)
    assert made.filename == "in.jsonl" and made.purpose == "batch" and made.object == "file"
    second = await client.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    got = await client.files.retrieve(made.id)
    assert got.id == made.id and got.bytes == len(LINES)
    assert (await client.files.content(made.id)).content == LINES
    listed = [f.id async for f in client.files.list()]
    assert listed == [second.id, made.id]  # newest first
    only_batch = [f.id async for f in client.files.list(purpose="batch")]
    assert only_batch == [made.id]
    page = await client.files.list(limit=1)
    assert [f.id for f in page.data] == [second.id] and page.has_more
    deleted = await client.files.delete(made.id)
    assert deleted.deleted and deleted.id == made.id
    with pytest.raises(openai.NotFoundError):
        await client.files.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        await client.files.content(made.id)


async def test_files_round_trip_on_sqlite_and_disk(sim_url: str) -> None:
    async with gateway(gateway_config(sim_url)) as (base, app):
        await _round_trip(_client(base))
        from sluice.web.appkeys import GATEWAY

        store = app[GATEWAY].files
        assert store is not None and store.on_disk
        kept = list(store.blob_dir.rglob("file-*"))
        assert len(kept) == 1  # the deleted file's bytes are gone, the other's are on disk


async def test_files_round_trip_on_postgres(sim_url: str) -> None:
    with postgres_schema() as url:
        async with gateway(_with(gateway_config(sim_url), store_url=url)) as (base, app):
            from sluice.web.appkeys import GATEWAY

            store = app[GATEWAY].files
            assert store is not None and not store.on_disk
            await _round_trip(_client(base))


async def test_another_tenant_gets_404(sim_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)
    config = keyed_config(sim_url, "sqlite:///keys.db")
    async with gateway(config) as (base, _app), aiohttp.ClientSession() as http:
        acme = (await create_key(http, base, tenant="acme"))["key"]
        other = (await create_key(http, base, tenant="globex"))["key"]
        mine = await _client(base, acme).files.create(file=("a.jsonl", LINES), purpose="batch")
        theirs = _client(base, other)
        for call in (theirs.files.retrieve, theirs.files.content, theirs.files.delete):
            with pytest.raises(openai.NotFoundError) as err:
                await call(mine.id)
            assert "No such File object" in str(err.value)
        assert [f.id async for f in theirs.files.list()] == []
        assert (await _client(base, acme).files.retrieve(mine.id)).id == mine.id
        with pytest.raises(openai.AuthenticationError):
            await _client(base, "sk-wrong").files.list()


async def test_hostile_uploads_are_4xx(sim_url: str) -> None:
    config = _with(gateway_config(sim_url), max_bytes=1000)
    async with gateway(config) as (base, _app), aiohttp.ClientSession() as http:
        client = _client(base)
        with pytest.raises(openai.APIStatusError) as err:
            await client.files.create(file=("big.jsonl", b"x" * 5000), purpose="batch")
        assert err.value.status_code == 413
        with pytest.raises(openai.BadRequestError):
            await client.files.create(file=("a.jsonl", LINES), purpose="fine-tune")
        with pytest.raises(openai.BadRequestError):
            await client.files.create(file=("a.jsonl", b"\xff\xfe"), purpose="batch")
        async with http.post(base + "/v1/files", json={"purpose": "batch"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["type"] == "invalid_request_error"
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        async with http.post(base + "/v1/files", data=form) as resp:
            assert resp.status == 400  # no file part
        async with http.get(base + "/v1/files/" + "x" * 5000) as resp:
            assert resp.status == 404
        async with http.get(base + "/v1/files?limit=0") as resp:
            assert resp.status == 400
