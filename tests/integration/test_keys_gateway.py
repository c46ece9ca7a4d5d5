"""Virtual keys end to end: admin API → official SDKs with the key → revoke → 401."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from sluice.observe.store import RecordStore
from sluice.server import GATEWAY
from sluice.web.keys_admin import ADMIN_SITE
from tests.governance_rig import (
    ADMIN,
    admin,
    create_key,
    gateway,
    keyed_config,
    postgres_schema,
    set_env,
)

pytestmark = pytest.mark.integration
HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def keyed(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    set_env(monkeypatch)
    config = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}")
    async with gateway(config) as (base, _), aiohttp.ClientSession() as http:
        yield base, http


async def test_admin_key_works_with_both_sdks_until_revoked(
    keyed: tuple[str, aiohttp.ClientSession],
) -> None:
    base, http = keyed
    created = await create_key(http, base, team="search", tier="gold", user="owner@acme")
    key = created["key"]
    assert key.startswith("sk-sluice-") and created["status"] == "active"
    oai = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    ant = anthropic.AsyncAnthropic(base_url=base, api_key=key, max_retries=0)
    try:
        chat = await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
        assert chat.choices[0].message.content
        msg = await ant.messages.create(model="claude-haiku", max_tokens=32, messages=HELLO)  # type: ignore[arg-type]
        assert msg.content
        # The key is never shown again.
        status, shown = await admin(http, "GET", f"{base}/admin/keys/{created['key_id']}")
        assert status == 200 and "key" not in shown and key not in str(shown)
        status, revoked = await admin(http, "DELETE", f"{base}/admin/keys/{created['key_id']}")
        assert status == 200 and revoked["status"] == "revoked"
        with pytest.raises(openai.AuthenticationError) as oai_err:
            await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
        assert oai_err.value.code == "key_revoked"
        with pytest.raises(anthropic.AuthenticationError) as ant_err:
            await ant.messages.create(model="claude-haiku", max_tokens=32, messages=HELLO)  # type: ignore[arg-type]
        assert ant_err.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    finally:
        await oai.close()
        await ant.close()


async def test_missing_and_wrong_keys_are_401_in_each_wire_format(
    keyed: tuple[str, aiohttp.ClientSession],
) -> None:
    base, http = keyed
    body = {"model": "gpt-4o-mini", "messages": HELLO}
    async with http.post(base + "/v1/chat/completions", json=body) as r:
        assert r.status == 401
        err = (await r.json())["error"]
        assert err["code"] == "missing_api_key" and "Bearer" in err["message"]
    bad = "sk-sluice-" + "A" * 43
    async with http.post(
        base + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {bad}"}
    ) as r:
        assert r.status == 401 and (await r.json())["error"]["code"] == "invalid_api_key"
    ant_body = {"model": "claude-haiku", "max_tokens": 5, "messages": HELLO}
    async with http.post(base + "/v1/messages", json=ant_body, headers={"x-api-key": bad}) as r:
        assert r.status == 401
        payload = await r.json()
        assert payload["type"] == "error" and payload["error"]["type"] == "authentication_error"
        assert bad not in str(payload)  # secrets never echoed
    # Garbage body without a key: still 401, the body is not even read.
    async with http.post(base + "/v1/chat/completions", data=b"{nope") as r:
        assert r.status == 401
    async with http.get(base + "/v1/models") as r:
        assert r.status == 401


async def test_allowed_models_and_expiry(keyed: tuple[str, aiohttp.ClientSession]) -> None:
    base, http = keyed
    key = (await create_key(http, base, allowed_models=["gpt-4o-mini"]))["key"]
    auth = {"authorization": f"Bearer {key}"}
    async with http.post(
        base + "/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO}, headers=auth
    ) as r:
        assert r.status == 403 and (await r.json())["error"]["code"] == "model_not_allowed"
    async with http.get(base + "/v1/models", headers=auth) as r:
        assert [m["id"] for m in (await r.json())["data"]] == ["gpt-4o-mini"]
    soon = await create_key(http, base, expires_at=time.time() + 0.3)
    headers = {"x-api-key": soon["key"]}
    ask = {"model": "claude-haiku", "max_tokens": 5, "messages": HELLO}
    async with http.post(base + "/v1/messages", json=ask, headers=headers) as r:
        assert r.status == 200
    await asyncio.sleep(0.4)
    async with http.post(base + "/v1/messages", json=ask, headers=headers) as r:
        assert r.status == 401 and "expired" in (await r.json())["error"]["message"]


async def test_a_virtual_key_cannot_use_the_admin_api(
    keyed: tuple[str, aiohttp.ClientSession],
) -> None:
    base, http = keyed
    key = (await create_key(http, base))["key"]
    for headers in ({"authorization": f"Bearer {key}"}, {"x-api-key": key}, {}):
        status, body = await admin(http, "GET", base + "/admin/keys", headers=headers)
        assert status == 401 and body["error"]["code"] == "unauthorized"
        status, _ = await admin(
            http, "POST", base + "/admin/keys", {"tenant": "x"}, headers=headers
        )
        assert status == 401
    status, listed = await admin(http, "GET", base + "/admin/keys")
    assert status == 200 and len(listed["data"]) == 1  # nothing was created by the key


async def test_tenant_comes_from_the_key_never_from_headers(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}")
    data = config.model_dump()
    data["observability"]["records"].update({"enabled": True, "store_url": records})
    config = config.model_validate(data)
    spoof = {
        "x-sluice-tenant": "victim",
        "x-sluice-team": "victim-team",
        "x-sluice-tier": "platinum",
        "x-sluice-key-id": "key_0000000000000000",
        "x-sluice-user": "end-user-7",
        "x-sluice-feature": "search",
    }
    async with gateway(config) as (base, _), aiohttp.ClientSession() as http:
        created = await create_key(http, base, team="blue", tier="free")
        headers = {"authorization": f"Bearer {created['key']}", **spoof}
        body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": HELLO, "user": "ignored"}
        async with http.post(base + "/v1/chat/completions", json=body, headers=headers) as r:
            assert r.status == 200
    [record] = RecordStore(records).query()
    assert record.tenant == "acme" and record.key_id == created["key_id"]
    assert record.user_id == "end-user-7" and record.feature == "search"


async def test_revocation_reaches_another_replica_within_a_second(
    sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gateways share one PostgreSQL store; revoking on A is refused by B within 1 s."""
    set_env(monkeypatch)
    with postgres_schema() as store_url:
        config = keyed_config(sim_url, store_url)
        async with (
            gateway(config) as (a, _),
            gateway(config) as (b, _),
            aiohttp.ClientSession() as http,
        ):
            created = await create_key(http, a)
            oai = openai.AsyncOpenAI(base_url=b + "/v1", api_key=created["key"], max_retries=0)
            try:
                await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
                status, _ = await admin(http, "DELETE", f"{a}/admin/keys/{created['key_id']}")
                assert status == 200
                revoked_at = time.monotonic()
                while True:
                    try:
                        await oai.chat.completions.create(model="gpt-4o-mini", messages=HELLO)  # type: ignore[arg-type]
                    except openai.AuthenticationError:
                        break
                    assert time.monotonic() - revoked_at < 1.0, "B still accepts a revoked key"
                    await asyncio.sleep(0.02)
                assert time.monotonic() - revoked_at < 1.0
            finally:
                await oai.close()
            status, listed = await admin(http, "GET", f"{b}/admin/keys")
            assert status == 200 and [k["status"] for k in listed["data"]] == ["revoked"]
            assert listed["data"][0]["key_id"] == created["key_id"]
        assert ADMIN  # the master key never changed during the test


async def test_admin_api_on_its_own_port(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    config = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}")
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"admin_port": 0})}
    )
    async with gateway(config) as (base, app), aiohttp.ClientSession() as http:
        admin_base = f"http://127.0.0.1:{app[ADMIN_SITE].bound_port}"
        status, _ = await admin(http, "GET", base + "/admin/keys")
        assert status == 404  # not on the data-plane port
        created = await create_key(http, admin_base)
        async with http.post(
            base + "/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": HELLO},
            headers={"authorization": f"Bearer {created['key']}"},
        ) as r:
            assert r.status == 200
        async with http.post(admin_base + "/v1/chat/completions", json={}) as r:
            assert r.status == 404  # and no data plane on the admin port


async def test_redis_broadcast_beats_a_long_key_cache(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 30 s key cache, only the Redis broadcast can make B refuse within a second."""
    set_env(monkeypatch)
    config = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}", key_cache_ttl_s=30)
    governance = config.governance.model_copy(update={"backend": "redis"})
    config = config.model_copy(update={"governance": governance})
    async with (
        gateway(config) as (a, _),
        gateway(config) as (b, app_b),
        aiohttp.ClientSession() as http,
    ):
        changes = app_b[GATEWAY].governance.changes
        assert changes is not None
        await asyncio.wait_for(changes.subscribed.wait(), 5)
        created = await create_key(http, a)
        headers = {"authorization": f"Bearer {created['key']}"}
        ask = {"model": "gpt-4o-mini", "messages": HELLO}
        async with http.post(b + "/v1/chat/completions", json=ask, headers=headers) as r:
            assert r.status == 200  # B has now cached the key as valid for 30 s
        status, _ = await admin(http, "DELETE", f"{a}/admin/keys/{created['key_id']}")
        assert status == 200
        revoked_at = time.monotonic()
        while True:
            async with http.post(b + "/v1/chat/completions", json=ask, headers=headers) as r:
                if r.status == 401:
                    break
            assert time.monotonic() - revoked_at < 1.0, "B still accepts a revoked key"
            await asyncio.sleep(0.01)
