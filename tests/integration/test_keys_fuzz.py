"""Fuzzing the admin API and (with a valid key) the data-plane body parsers over real HTTP:
never a 5xx, and the key table stays consistent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.governance_rig import ADMIN, create_key, gateway, keyed_config, postgres_schema, set_env

pytestmark = pytest.mark.integration

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
text = st.text(max_size=40)  # includes NUL, control characters and lone surrogates
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "tenant", "name", "team", "user", "tier", "allowed_models", "limits", "budgets",
    "metadata", "expires_at",
]  # fmt: skip
plausible = {
    "tenant": text,
    "allowed_models": st.lists(text, max_size=3) | json_values,
    "limits": st.fixed_dictionaries(
        {}, optional={"rpm": st.integers(-2, 10**12) | json_values, "tpm": st.integers()}
    ),
    "budgets": st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "period": st.sampled_from(["daily", "weekly", "monthly", "total", "hourly"]),
                "usd": st.floats(allow_nan=False) | st.integers(),
                "tokens": st.integers(),
                "kind": text,
            },
        ),
        max_size=3,
    ),
    "expires_at": st.floats(allow_nan=False, allow_infinity=False) | st.integers() | text,
}
key_bodies = st.fixed_dictionaries(
    {}, optional={f: plausible.get(f, text) | json_values for f in FIELDS}
)
bodies = key_bodies | json_values.map(lambda v: v) | st.binary(max_size=64)


@dataclass
class Rig:
    base: str
    http: aiohttp.ClientSession
    key: str
    key_id: str
    created: set[str] = field(default_factory=set)


@pytest.fixture
async def rig(sim_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    set_env(monkeypatch)
    with postgres_schema() as store_url:
        async with (
            gateway(keyed_config(sim_url, store_url)) as (base, _),
            aiohttp.ClientSession() as http,
        ):
            made = await create_key(http, base)
            rig = Rig(base, http, made["key"], made["key_id"], {made["key_id"]})
            yield rig
            await _check_consistent(rig)


def _raw(body: Any) -> bytes:
    # The stdlib encoder: big integers and lone surrogates (as \ud800 escapes) get through.
    return body if isinstance(body, bytes) else json.dumps(body).encode()


async def _send(rig: Rig, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    async with rig.http.request(method, rig.base + path, data=_raw(body), headers=headers) as r:
        payload = await r.read()
        assert r.status < 500, (method, path, body, r.status, payload[:300])
        assert r.content_type == "application/json"
        return r.status, orjson.loads(payload)


async def _check_consistent(rig: Rig) -> None:
    status, listed = await _send(rig, "GET", "/admin/keys?limit=1000", b"", ADMIN)
    assert status == 200
    assert {k["key_id"] for k in listed["data"]} == rig.created
    for key in listed["data"]:
        assert key["tenant"] and "key" not in key


@FUZZ
@given(body=bodies, patch=bodies, key_id=text)
async def test_admin_api_never_fails_or_corrupts(
    rig: Rig, body: Any, patch: Any, key_id: str
) -> None:
    status, created = await _send(rig, "POST", "/admin/keys", body, ADMIN)
    if status == 201:
        assert created["key"].startswith("sk-sluice-")
        rig.created.add(created["key_id"])
    else:
        assert status in (400, 422) and created["error"]["message"]
    status, _ = await _send(rig, "PATCH", f"/admin/keys/{rig.key_id}", patch, ADMIN)
    assert status in (200, 400, 422)
    status, shown = await _send(rig, "GET", f"/admin/keys/{rig.key_id}", b"", ADMIN)
    assert status == 200 and shown["tenant"] == "acme" and shown["status"] != "revoked"
    path = "/admin/keys/" + key_id.encode("utf-8", "surrogatepass").hex()
    assert (await _send(rig, "GET", path, b"", ADMIN))[0] == 404
    tenant = {"tenant": key_id} if key_id else {}
    async with rig.http.get(rig.base + "/admin/keys", params=tenant, headers=ADMIN) as r:
        assert r.status in (200, 400)
    await _check_consistent(rig)


chat_bodies = (
    st.fixed_dictionaries(
        {"model": st.sampled_from(["gpt-4o-mini", "claude-haiku", "nope"]) | json_values},
        optional={
            "messages": st.lists(
                st.fixed_dictionaries(
                    {"role": st.sampled_from(["user", "assistant", "system", "tool", "x"])},
                    optional={"content": text | json_values},
                ),
                max_size=3,
            )
            | json_values,
            "max_tokens": st.integers(-5, 10**7) | json_values,
            "stream": st.booleans() | json_values,
            "user": text | json_values,
            "metadata": json_values,
            "temperature": json_values,
            "tools": json_values,
        },
    )
    | json_values
    | st.binary(max_size=64)
)


@FUZZ
@given(body=chat_bodies, wire=st.sampled_from(["openai", "anthropic"]), user=text)
async def test_data_plane_parsers_never_fail_with_a_valid_key(
    rig: Rig, body: Any, wire: str, user: str
) -> None:
    if wire == "openai":
        path, headers = "/v1/chat/completions", {"authorization": f"Bearer {rig.key}"}
    else:
        path, headers = "/v1/messages", {"x-api-key": rig.key, "anthropic-version": "2023-06-01"}
    if user.isprintable() and user.isascii():
        headers["x-sluice-user"] = user
    async with rig.http.post(rig.base + path, data=_raw(body), headers=headers) as r:
        payload = await r.read()
        assert r.status < 500, (body, r.status, payload[:300])
        assert r.status != 401  # the key is valid whatever the body says
