"""`/v1/vector_stores` through the official `openai` SDK: create, attach files (txt, md, html,
jsonl), poll to completed, search with filters, update attributes, file batches, delete;
tenant isolation with two virtual keys; hostile bodies are 4xx; two gateways on one
PostgreSQL see each other's stores and chunks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from sluice.config import SluiceConfig
from tests.conftest import gateway_config
from tests.governance_rig import create_key, gateway, keyed_config, postgres_schema, set_env

POSTGRES_DOC = b"""# Vacuum

## Autovacuum
The autovacuum daemon reclaims storage occupied by dead tuples. It runs automatically in the
background. You can tune how often it wakes with autovacuum_naptime.

## Freezing
Transaction ID wraparound is prevented by freezing old rows. Freezing marks a row visible to
every future transaction.
"""
HTML_DOC = b"""<html><head><style>p{}</style><script>var x = 'secret';</script></head>
<body><h1>Kitchen</h1><p>Sourdough bread needs a starter made of flour and water.</p>
<p>Let the dough rise overnight in the fridge.</p></body></html>"""
JSONL_DOC = b'{"text": "The Eiffel Tower is in Paris."}\n{"text": "The Colosseum is in Rome."}\n'

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


def _with(config: SluiceConfig, section: str, **values: Any) -> SluiceConfig:
    data = config.model_dump()
    data[section].update(values)
    return SluiceConfig.model_validate(data)


async def _settled(client: openai.AsyncOpenAI, vs_id: str, file_id: str) -> Any:
    for _ in range(600):
        f = await client.vector_stores.files.retrieve(file_id, vector_store_id=vs_id)
        if f.status != "in_progress":
            return f
        await asyncio.sleep(0.1)
    raise AssertionError("ingest did not finish")


async def _upload(client: openai.AsyncOpenAI, name: str, data: bytes) -> str:
    return (await client.files.create(file=(name, data), purpose="assistants")).id


async def test_vector_store_round_trip(sim_url: str) -> None:
    async with gateway(gateway_config(sim_url)) as (base, _app):
        client = _client(base)
        pg = await _upload(client, "vacuum.md", POSTGRES_DOC)
        html = await _upload(client, "bread.html", HTML_DOC)
        jsonl = await _upload(client, "places.jsonl", JSONL_DOC)
        bad = await _upload(client, "blob.bin", b"\x00\x01binary\xff")
        vs = await client.vector_stores.create(name="kb", metadata={"team": "db"})
        assert vs.object == "vector_store" and vs.name == "kb" and vs.id.startswith("vs_")
        f1 = await client.vector_stores.files.create(
            vector_store_id=vs.id, file_id=pg, attributes={"topic": "postgres", "year": 2024}
        )
        assert f1.status == "in_progress" and f1.attributes == {"topic": "postgres", "year": 2024}
        await client.vector_stores.files.create(
            vector_store_id=vs.id, file_id=html, attributes={"topic": "cooking", "year": 2020}
        )
        for fid in (pg, html):
            assert (await _settled(client, vs.id, fid)).status == "completed"
        batch = await client.vector_stores.file_batches.create(
            vector_store_id=vs.id, file_ids=[jsonl, bad]
        )
        assert batch.object == "vector_store.files_batch"
        assert (await _settled(client, vs.id, jsonl)).status == "completed"
        failed = await _settled(client, vs.id, bad)
        assert failed.status == "failed" and failed.last_error is not None
        got = await client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=vs.id)
        assert got.file_counts.completed == 1 and got.file_counts.failed == 1
        store = await client.vector_stores.retrieve(vs.id)
        assert store.file_counts.total == 4 and store.file_counts.completed == 3
        assert store.status == "completed" and store.usage_bytes > 0

        page = await client.vector_stores.search(
            vector_store_id=vs.id, query="how do dead rows get cleaned up automatically?"
        )
        assert page.data, "no results"
        top = page.data[0]
        assert top.file_id == pg and top.filename == "vacuum.md"
        assert "autovacuum" in top.content[0].text.lower()
        assert 0 < top.score <= 1 and (top.attributes or {})["topic"] == "postgres"
        # The HTML's script and style never reach the index.
        bread = await client.vector_stores.search(vector_store_id=vs.id, query="var x secret")
        assert all("secret" not in r.content[0].text for r in bread.data)
        # Attribute filters apply before ranking: only the cooking file can answer.
        only = await client.vector_stores.search(
            vector_store_id=vs.id,
            query="how do dead rows get cleaned up automatically?",
            filters={"type": "eq", "key": "topic", "value": "cooking"},
        )
        assert only.data and {r.file_id for r in only.data} == {html}
        compound = await client.vector_stores.search(
            vector_store_id=vs.id,
            query="bread",
            filters={
                "type": "and",
                "filters": [
                    {"type": "gte", "key": "year", "value": 2021},
                    {"type": "in", "key": "topic", "value": ["postgres", "cooking"]},
                ],
            },
        )
        assert {r.file_id for r in compound.data} == {pg}
        # Updating attributes moves the file into the filter's reach at once.
        await client.vector_stores.files.update(
            file_id=html, vector_store_id=vs.id, attributes={"topic": "cooking", "year": 2025}
        )
        compound = await client.vector_stores.search(
            vector_store_id=vs.id,
            query="sourdough starter",
            filters={"type": "gte", "key": "year", "value": 2021},
            max_num_results=1,
        )
        assert [r.file_id for r in compound.data] == [html]
        content = await client.vector_stores.files.content(file_id=pg, vector_store_id=vs.id)
        assert any("reezing" in (c.text or "") for c in content.data)
        listed = [f.id async for f in client.vector_stores.files.list(vector_store_id=vs.id)]
        assert set(listed) == {pg, html, jsonl, bad}
        assert (await client.vector_stores.files.delete(file_id=pg, vector_store_id=vs.id)).deleted
        after = await client.vector_stores.search(vector_store_id=vs.id, query="autovacuum")
        assert pg not in {r.file_id for r in after.data}
        updated = await client.vector_stores.update(vs.id, name="kb2")
        assert updated.name == "kb2"
        assert [s.id async for s in client.vector_stores.list()] == [vs.id]
        assert (await client.vector_stores.delete(vs.id)).deleted
        with pytest.raises(openai.NotFoundError):
            await client.vector_stores.retrieve(vs.id)


async def test_hostile_vector_store_input_is_4xx(sim_url: str) -> None:
    async with gateway(gateway_config(sim_url)) as (base, _app), aiohttp.ClientSession() as http:
        client = _client(base)
        vs = await client.vector_stores.create(name="x")
        bad_bodies = [
            {"query": ""},
            {"query": "a", "max_num_results": 0},
            {"query": "a", "max_num_results": "5"},
            {"query": "a", "filters": {"type": "regex", "key": "a", "value": "b"}},
            {"query": "a", "filters": {"type": "eq", "key": "a", "value": {"x": 1}}},
            {"query": "a", "filters": {"type": "and", "filters": []}},
            {"query": "a", "ranking_options": {"score_threshold": 2}},
            {"query": "x" * 5000},
        ]
        for body in bad_bodies:
            async with http.post(f"{base}/v1/vector_stores/{vs.id}/search", json=body) as resp:
                assert resp.status == 400, body
                assert (await resp.json())["error"]["type"] == "invalid_request_error"
        deep: dict[str, Any] = {"type": "eq", "key": "a", "value": 1}
        for _ in range(40):
            deep = {"type": "and", "filters": [deep]}
        async with http.post(
            f"{base}/v1/vector_stores/{vs.id}/search", json={"query": "a", "filters": deep}
        ) as resp:
            assert resp.status == 400
        with pytest.raises(openai.NotFoundError):
            await client.vector_stores.files.create(vector_store_id=vs.id, file_id="file-nope")
        with pytest.raises(openai.BadRequestError):
            await client.vector_stores.create(metadata={"k": 1})  # type: ignore[dict-item]
        with pytest.raises(openai.BadRequestError):
            await client.vector_stores.create(expires_after={"anchor": "x", "days": 1})  # type: ignore[arg-type]
        fid = await _upload(client, "a.txt", b"hello world")
        with pytest.raises(openai.BadRequestError):
            await client.vector_stores.files.create(
                vector_store_id=vs.id, file_id=fid, attributes={"k" * 100: "v"}
            )
        async with http.post(f"{base}/v1/vector_stores", data=b"{not json") as resp:
            assert resp.status == 400
        async with http.get(f"{base}/v1/vector_stores/{'v' * 5000}") as resp:
            assert resp.status == 404


async def test_another_tenant_gets_404(sim_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch)
    config = keyed_config(sim_url, "sqlite:///keys.db")
    async with gateway(config) as (base, _app), aiohttp.ClientSession() as http:
        acme = _client(base, (await create_key(http, base, tenant="acme"))["key"])
        globex = _client(base, (await create_key(http, base, tenant="globex"))["key"])
        fid = await _upload(acme, "vacuum.md", POSTGRES_DOC)
        vs = await acme.vector_stores.create(name="acme-kb", file_ids=[fid])
        await _settled(acme, vs.id, fid)
        for call in (
            lambda: globex.vector_stores.retrieve(vs.id),
            lambda: globex.vector_stores.delete(vs.id),
            lambda: globex.vector_stores.update(vs.id, name="mine"),
            lambda: globex.vector_stores.search(vector_store_id=vs.id, query="vacuum"),
            lambda: globex.vector_stores.files.retrieve(fid, vector_store_id=vs.id),
            lambda: globex.vector_stores.files.list(vector_store_id=vs.id),
        ):
            with pytest.raises(openai.NotFoundError):
                await call()
        assert [s.id async for s in globex.vector_stores.list()] == []
        # globex cannot attach acme's upload to its own store either.
        own = await globex.vector_stores.create(name="globex-kb")
        with pytest.raises(openai.NotFoundError):
            await globex.vector_stores.files.create(vector_store_id=own.id, file_id=fid)
        assert (await acme.vector_stores.search(vector_store_id=vs.id, query="vacuum")).data


async def test_two_gateways_share_stores_on_postgres(sim_url: str) -> None:
    with postgres_schema() as url:
        config = _with(
            _with(gateway_config(sim_url), "files", store_url=url), "retrieval", store_url=url
        )
        async with gateway(config) as (base_a, _a), gateway(config) as (base_b, _b):
            a, b = _client(base_a), _client(base_b)
            fid = await _upload(a, "vacuum.md", POSTGRES_DOC)
            vs = await a.vector_stores.create(name="shared", file_ids=[fid])
            assert (await _settled(b, vs.id, fid)).status == "completed"
            page = await b.vector_stores.search(vector_store_id=vs.id, query="autovacuum daemon")
            assert page.data and page.data[0].file_id == fid
            fid2 = await _upload(b, "bread.html", HTML_DOC)
            await b.vector_stores.files.create(vector_store_id=vs.id, file_id=fid2)
            await _settled(b, vs.id, fid2)
            page = await a.vector_stores.search(vector_store_id=vs.id, query="sourdough starter")
            assert page.data[0].file_id == fid2  # replica A reloaded after B's change
            await a.vector_stores.files.delete(file_id=fid2, vector_store_id=vs.id)
            page = await b.vector_stores.search(vector_store_id=vs.id, query="sourdough starter")
            assert fid2 not in {r.file_id for r in page.data}


async def test_searches_during_ingest_and_deletes_never_fail(sim_url: str) -> None:
    """Concurrent attaches, searches, attribute updates and a delete on one store: every
    call answers (no 500), and the store ends consistent."""
    async with gateway(gateway_config(sim_url)) as (base, _app):
        client = _client(base)
        vs = await client.vector_stores.create(name="busy")
        ids = [
            await _upload(client, f"doc{i}.md", POSTGRES_DOC + f"\nExtra note {i}.".encode())
            for i in range(6)
        ]

        async def attach(fid: str) -> None:
            await client.vector_stores.files.create(vector_store_id=vs.id, file_id=fid)

        async def search(i: int) -> None:
            await client.vector_stores.search(vector_store_id=vs.id, query=f"autovacuum {i}")

        await asyncio.gather(*(attach(f) for f in ids), *(search(i) for i in range(12)))
        await asyncio.gather(
            client.vector_stores.files.delete(file_id=ids[0], vector_store_id=vs.id),
            client.vector_stores.files.update(
                file_id=ids[1], vector_store_id=vs.id, attributes={"x": 1}
            ),
            *(search(i) for i in range(6)),
        )
        for fid in ids[1:]:
            assert (await _settled(client, vs.id, fid)).status == "completed"
        page = await client.vector_stores.search(
            vector_store_id=vs.id, query="autovacuum daemon", max_num_results=50
        )
        assert page.data and ids[0] not in {r.file_id for r in page.data}
        store = await client.vector_stores.retrieve(vs.id)
        assert store.file_counts.total == 5 and store.file_counts.completed == 5
