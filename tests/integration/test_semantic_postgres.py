"""The PostgreSQL store shared by replicas: each replica searches its own memory, loads the
live rows at startup and follows the others through LISTEN/NOTIFY.

Every test uses its own table (random suffix) and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from openai import AsyncOpenAI

from sluice import server
from sluice.cache.semantic.config import SemanticCacheConfig
from sluice.cache.semantic.stage import SemanticCacheStage
from sluice.cache.semantic.store import PostgresStore, psycopg_url
from sluice.identity import Identity
from sluice.pipeline.context import CallContext
from sluice.state.migrations import version_table
from sluice.types import CallMeta, ChatRequest, Message, TextPart
from tests.integration.semantic_support import (
    PARAPHRASE,
    QUESTION,
    real_embedder_or_skip,
    semantic_config,
    sim_requests,
)
from tests.unit.semantic_fakes import FakeEmbedder, Upstream

pytestmark = pytest.mark.integration

PG_URL = os.environ.get("SLUICE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
Q, PARA = "What is the capital of France?", "Tell me the capital city of France"


@pytest.fixture
async def table() -> AsyncIterator[str]:
    name = f"sluice_semantic_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = await psycopg.AsyncConnection.connect(psycopg_url(PG_URL), autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {exc!r}")
    yield name
    await conn.execute(f'DROP TABLE IF EXISTS "{name}"')
    await conn.execute(f'DROP TABLE IF EXISTS "{version_table("semantic", name)}"')
    await conn.close()


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "replicas never caught up"
        await asyncio.sleep(0.02)


def request(text: str) -> ChatRequest:
    return ChatRequest(
        model="gpt-4o-mini",
        messages=[Message("user", [TextPart(text)])],
        temperature=0,
        meta=CallMeta(request_id="r"),
    )


def replica(table: str, embedder: FakeEmbedder) -> SemanticCacheStage:
    config = SemanticCacheConfig(enabled=True, backend="postgres", table=table)
    return SemanticCacheStage(config, lambda: embedder, PostgresStore(PG_URL, table))


async def ask(
    stage: SemanticCacheStage, req: ChatRequest, upstream: Upstream, tenant: str = "acme"
) -> CallContext:
    ctx = CallContext(req, identity=Identity(key_id="k-" + tenant, tenant=tenant))
    await stage(ctx, upstream)
    return ctx


def entries(stage: SemanticCacheStage) -> int:
    return stage.snapshot()["entries"]


async def test_replicas_share_entries_and_purges(table: str) -> None:
    embedder = FakeEmbedder()
    embedder.alias(PARA, Q, 0.97)
    a, b = replica(table, embedder), replica(table, embedder)
    await a.start()
    await b.start()
    upstream = Upstream()
    try:
        await ask(a, request(Q), upstream)
        await eventually(lambda: entries(b) == 1)  # NOTIFY → b fetched the row
        ctx = await ask(b, request(PARA), upstream)
        assert ctx.cache_status == "semantic" and upstream.calls == 1
        other = await ask(b, request(Q), upstream, tenant="globex")
        assert other.cache_status == "miss"  # never across tenants, on any replica
        await eventually(lambda: entries(a) == 2)
        assert await a.purge(tenant="acme") == 1
        await eventually(lambda: entries(b) == 1)  # b dropped acme's entry, kept globex's
        ctx = await ask(b, request(PARA), upstream)
        assert ctx.cache_status == "miss"
        await eventually(lambda: entries(a) == 2)
        assert await b.purge() == 2
        await eventually(lambda: entries(a) == 0)
        # A replica that starts later loads what is live.
        await ask(a, request(Q), upstream)
        c = replica(table, embedder)
        await c.start()
        try:
            assert entries(c) == 1
            ctx = await ask(c, request(PARA), upstream)
            assert ctx.cache_status == "semantic"
        finally:
            await c.close()
    finally:
        await a.close()
        await b.close()


async def test_two_gateways_share_the_postgres_store(sim_url: str, table: str) -> None:
    """Two real gateways (two apps, one simulator) over loopback with the openai SDK."""
    await real_embedder_or_skip()
    config = semantic_config(sim_url, backend="postgres", postgres_url=PG_URL, table=table)
    apps = [server.create_app(config) for _ in range(2)]
    started = [await server.start_app(app) for app in apps]
    stages = [stage for app in apps if (stage := app[server.GATEWAY].semantic) is not None]
    assert len(stages) == 2
    one, two = (
        AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
        for _, port in started
    )
    body: Any = {"model": "gpt-4o-mini", "temperature": 0, "max_tokens": 40}

    def messages(text: str) -> Any:
        return [{"role": "user", "content": text}]

    try:
        first = await one.chat.completions.create(**body, messages=messages(QUESTION))
        await eventually(lambda: stages[1].snapshot()["entries"] == 1)
        before = await sim_requests(sim_url)
        raw = await two.chat.completions.with_raw_response.create(
            **body, messages=messages(PARAPHRASE)
        )
        assert raw.headers["x-sluice-cache"] == "semantic"
        assert raw.parse().choices[0].message.content == first.choices[0].message.content
        assert await sim_requests(sim_url) == before
        assert await stages[0].purge(route="gpt-4o-mini") == 1
        await eventually(lambda: stages[1].snapshot()["entries"] == 0)
        raw = await two.chat.completions.with_raw_response.create(
            **body, messages=messages(PARAPHRASE)
        )
        assert raw.headers["x-sluice-cache"] == "miss"
    finally:
        await one.close()
        await two.close()
        for runner, _ in started:
            await runner.cleanup()
