"""Cache operations on real gateways: two processes sharing Redis, the admin API, the CLI,
and a memory cache that survives a restart through its SQLite file."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from click.testing import CliRunner
from openai import AsyncOpenAI

from sluice import server
from sluice.cache.backends import RedisBackend
from sluice.cli import main as cli
from sluice.config import SluiceConfig
from tests.conftest import gateway_config
from tests.integration.test_cache_redis import redis_backend_or_skip

pytestmark = pytest.mark.integration

ADMIN_KEY = "admin-" + uuid.uuid4().hex
MESSAGES: Any = [{"role": "user", "content": "Tell me about lakes"}]


class Gateway:
    def __init__(self, runner: web.AppRunner, port: int, app: web.Application):
        self.runner, self.app = runner, app
        self.url = f"http://127.0.0.1:{port}"
        self.oai = AsyncOpenAI(base_url=self.url + "/v1", api_key="sk-test", max_retries=0)

    async def ask(self, content: str = "Tell me about lakes", model: str = "gpt-4o-mini") -> Any:
        raw = await self.oai.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": content}], temperature=0
        )
        return raw.headers, raw.parse()

    async def admin(
        self, method: str, path: str, body: Any = None, key: str | None = ADMIN_KEY
    ) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url + path, json=body, headers=headers) as resp,
        ):
            return resp.status, await resp.json()

    async def close(self) -> None:
        await self.oai.close()
        await self.runner.cleanup()


async def start_gateway(sim_url: str, cache: dict[str, Any]) -> Gateway:
    data = gateway_config(sim_url).model_dump()
    data["cache"] = cache
    app = server.create_app(SluiceConfig.model_validate(data))
    runner, port = await server.start_app(app)
    return Gateway(runner, port, app)


@pytest.fixture
def admin_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SLUICE_ADMIN_KEY", ADMIN_KEY)
    return ADMIN_KEY


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    prefix = f"sluice-test:{uuid.uuid4().hex}:"
    backend = await redis_backend_or_skip(prefix)
    yield prefix
    await backend.clear()
    await backend.close()


@pytest.fixture
async def pair(
    sim_url: str, redis_prefix: str, admin_key: str
) -> AsyncIterator[tuple[Gateway, Gateway]]:
    cache = {"backend": "redis", "key_prefix": redis_prefix}
    a = await start_gateway(sim_url, cache)
    b = await start_gateway(sim_url, cache)
    yield a, b
    await a.close()
    await b.close()


async def test_two_gateways_share_entries_and_purges(pair: tuple[Gateway, Gateway]) -> None:
    a, b = pair
    headers, first = await a.ask()
    assert headers["x-sluice-cache"] == "miss"
    entry = headers["x-sluice-cache-key"]
    headers, second = await b.ask()
    assert headers["x-sluice-cache"] == "exact" and second.id == first.id
    assert headers["x-sluice-cache-key"] == entry

    status, body = await a.admin("POST", "/admin/cache/purge", {"entry_id": entry})
    assert status == 200 and body == {"purged": {"exact": 1}, "total": 1}
    headers, _ = await b.ask()
    assert headers["x-sluice-cache"] == "miss"  # gone for the other process too
    _, body = await b.admin("POST", "/admin/cache/purge", {"all": True})
    assert body["total"] == 1  # b's fresh answer
    headers, _ = await a.ask()
    assert headers["x-sluice-cache"] == "miss"


async def test_redis_tag_index_counts_purges_and_expires(redis_prefix: str) -> None:
    backend = RedisBackend(prefix=redis_prefix)
    try:
        await backend.set_tagged("e1", b"12345", 60, ("exact", "route:a"))
        await backend.set_tagged("e2", b"1", 0.05, ("exact", "route:b"))
        assert await backend.tag_usage("exact") == (2, len("e1") + 5 + len("e2") + 1)
        await asyncio.sleep(0.1)
        assert await backend.tag_usage("exact") == (1, len("e1") + 5)
        assert await backend.tag_usage("route:b") == (0, 0)
        assert await backend.pop("e1") and not await backend.pop("e1")
        assert await backend.tag_usage("exact") == (0, 0)  # a purged key leaves no count
        await backend.set_tagged("e3", b"x", 60, ("exact",))
        assert await backend.purge_tag("exact") == 1
        client = backend._client
        assert await client.exists(redis_prefix + "tag:exact") == 0
        await backend.set_tagged("e4", b"x", 0.2, ("exact",))
        ttl_ms = await client.pttl(redis_prefix + "tag:exact")
        assert 0 < ttl_ms <= 200  # the index itself expires with its entries
        await backend.set_tagged("e5", b"x", 30, ("exact",))
        assert await client.pttl(redis_prefix + "tag:exact") > 20_000  # only ever extended
        await backend.set_tagged("e6", b"x", 1, ("exact",))
        assert await client.pttl(redis_prefix + "tag:exact") > 20_000
    finally:
        await backend.close()


async def test_purge_by_route_and_tenant_through_redis(pair: tuple[Gateway, Gateway]) -> None:
    a, b = pair
    await a.ask("one")
    await a.ask("two")
    await b.ask("three", model="gpt-4o")
    status, stats = await b.admin("GET", "/admin/cache/stats")
    assert status == 200 and stats["caches"]["exact"]["entries"] == 3
    assert stats["caches"]["exact"]["bytes"] > 0
    status, body = await b.admin("POST", "/admin/cache/purge", {"route": "gpt-4o-mini"})
    assert body["total"] == 2
    headers, _ = await a.ask("three", model="gpt-4o")
    assert headers["x-sluice-cache"] == "exact"  # the other route kept its entry
    _, body = await a.admin("POST", "/admin/cache/purge", {"tenant": "default"})
    assert body["total"] == 1
    _, stats = await a.admin("GET", "/admin/cache/stats")
    assert stats["caches"]["exact"]["entries"] == 0


async def test_admin_api_needs_the_key_and_valid_bodies(pair: tuple[Gateway, Gateway]) -> None:
    a, _ = pair
    status, body = await a.admin("GET", "/admin/cache/stats", key=None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, _ = await a.admin("POST", "/admin/cache/purge", {"all": True}, key="wrong")
    assert status == 401
    for bad in ({}, {"route": "a", "tenant": "b"}, {"all": "yes"}, {"cache": "nope", "all": True}):
        status, body = await a.admin("POST", "/admin/cache/purge", bad)
        assert status == 400, bad
        assert body["error"]["message"]
    await a.ask()
    status, body = await a.admin("POST", "/admin/cache/purge", {"all": True, "cache": "exact"})
    assert (status, body["total"]) == (200, 1)


async def test_stats_count_hits_and_savings(sim_url: str, admin_key: str) -> None:
    gw = await start_gateway(sim_url, {"backend": "memory"})
    try:
        for _ in range(3):
            await gw.ask()
        _, body = await gw.admin("GET", "/admin/cache/stats")
        exact = body["caches"]["exact"]
        assert (exact["entries"], exact["hits"], exact["misses"]) == (1, 2, 1)
        assert exact["hit_rate"] == pytest.approx(2 / 3)
        assert exact["saved_input_tokens"] > 0 and float(exact["saved_usd"]) > 0
    finally:
        await gw.close()


async def test_cli_stats_and_purge(pair: tuple[Gateway, Gateway]) -> None:
    a, _ = pair
    await a.ask()
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["cache", *args, "--url", a.url], catch_exceptions=False)

    result = await asyncio.to_thread(run, "stats")
    assert result.exit_code == 0, result.output
    assert "exact:" in result.output and "entries" in result.output
    result = await asyncio.to_thread(run, "purge", "--route", "gpt-4o-mini")
    assert result.exit_code == 0, result.output
    assert "exact: 1 purged" in result.output
    result = await asyncio.to_thread(run, "purge")
    assert result.exit_code != 0 and "exactly one" in result.output


async def test_cli_without_the_key_explains(
    pair: tuple[Gateway, Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = pair
    monkeypatch.delenv("SLUICE_ADMIN_KEY")
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["cache", "stats", "--url", a.url])
    assert result.exit_code != 0 and "HTTP 401" in result.output
    assert "SLUICE_ADMIN_KEY" in result.output


async def test_memory_cache_survives_a_restart(sim_url: str, tmp_path: Path) -> None:
    cache = {"backend": "memory", "persist_path": str(tmp_path / "cache.db")}
    first = await start_gateway(sim_url, cache)
    headers, answer = await first.ask()
    assert headers["x-sluice-cache"] == "miss"
    await first.close()  # flushes the file
    second = await start_gateway(sim_url, cache)
    try:
        headers, again = await second.ask()
        assert headers["x-sluice-cache"] == "exact" and again.id == answer.id
    finally:
        await second.close()


async def test_stale_if_error_through_the_gateway(sim_url: str) -> None:
    cache = {"backend": "memory", "exact": {"ttl_s": 0.2, "stale_if_error_s": 60}}
    gw = await start_gateway(sim_url, cache)
    try:
        _, answer = await gw.ask()
        await asyncio.sleep(0.3)
        raw = await gw.oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Tell me about lakes"}],
            temperature=0,
            extra_headers={"x-sim-fault": "503"},
        )
        assert raw.headers["x-sluice-cache"] == "stale"
        assert raw.parse().id == answer.id
    finally:
        await gw.close()


async def test_two_gateway_processes_share_redis(
    sim_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    """The same as above with two real `sluice serve` child processes."""
    from sluice.bench.processes import start_gateway as spawn_gateway
    from sluice.config import default_config_text

    config = tmp_path / "sluice.yaml"
    config.write_text(
        default_config_text() + f'\ncache:\n  backend: redis\n  key_prefix: "{redis_prefix}"\n'
    )
    env = {"SLUICE_ADMIN_KEY": ADMIN_KEY, "SLUICE_RECORDS": "false"}
    children = []
    try:
        for _ in range(2):
            children.append(
                await asyncio.to_thread(
                    spawn_gateway, tmp_path / "logs", sim_url, config=str(config), env=env
                )
            )
        one, two = (
            AsyncOpenAI(base_url=c.url + "/v1", api_key="sk-test", max_retries=0) for c in children
        )

        async def ask(client: AsyncOpenAI) -> tuple[str, str, str]:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=MESSAGES, temperature=0
            )
            return raw.headers["x-sluice-cache"], raw.headers["x-sluice-cache-key"], raw.parse().id

        status, entry, first_id = await ask(one)
        assert status == "miss"
        assert await ask(two) == ("exact", entry, first_id)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                children[1].url + "/admin/cache/purge",
                json={"entry_id": entry},
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            ) as resp,
        ):
            assert resp.status == 200 and (await resp.json())["total"] == 1
        status, _, new_id = await ask(one)
        assert status == "miss" and new_id != first_id  # purged for the process that stored it
        await one.close()
        await two.close()
    finally:
        for child in children:
            child.stop()
