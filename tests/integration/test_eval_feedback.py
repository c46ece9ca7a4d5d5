"""User feedback end to end: two tenants with real virtual keys, the official openai SDK for
the calls, `POST /v1/sluice/feedback` over HTTP, then `sluice eval export` / `feedback`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from click.testing import CliRunner

from sluice.cli import main
from sluice.config import SluiceConfig
from sluice.eval.feedback import MAX_COMMENT_CHARS, MAX_TAGS
from sluice.web.feedback import RECORD_WAIT_S
from tests.governance_rig import (
    ADMIN,
    create_key,
    gateway,
    keyed_config,
    postgres_schema,
    set_env,
)

pytestmark = pytest.mark.integration
HELLO = [{"role": "user", "content": "hello feedback"}]


def _config(sim_url: str, keys_url: str, records_url: str) -> SluiceConfig:
    data = keyed_config(sim_url, keys_url).model_dump()
    data["observability"]["records"].update({"enabled": True, "store_url": records_url})
    return SluiceConfig.model_validate(data)


@pytest.fixture
async def rig(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, aiohttp.ClientSession, str]]:
    set_env(monkeypatch)
    records = f"sqlite:///{tmp_path / 'records.db'}"
    config = _config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}", records)
    async with gateway(config) as (base, _), aiohttp.ClientSession() as http:
        yield base, http, records


async def _call(base: str, key: str, model: str = "gpt-4o-mini") -> str:
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model=model,
            messages=HELLO,  # type: ignore[arg-type]
        )
    finally:
        await client.close()
    return raw.headers["x-sluice-request-id"]


async def _feedback(http: aiohttp.ClientSession, base: str, key: str, body: Any) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {key}"}
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with http.post(base + "/v1/sluice/feedback", data=data, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_feedback_is_scoped_to_the_tenant_and_joined_to_records(
    rig: tuple[str, aiohttp.ClientSession, str],
) -> None:
    base, http, records = rig
    acme = (await create_key(http, base, tenant="acme"))["key"]
    globex = (await create_key(http, base, tenant="globex"))["key"]
    acme_call = await _call(base, acme)
    globex_call = await _call(base, globex, model="gpt-4o")

    status, body = await _feedback(
        http, base, acme, {"request_id": acme_call, "thumbs": "up", "tags": ["helpful"]}
    )
    assert status == 201, body
    assert body["score"] == 1.0 and body["model"] == "gpt-4o-mini"

    # Another tenant's call is a 404 in the OpenAI error shape, like an unknown id.
    status, body = await _feedback(http, base, acme, {"request_id": globex_call, "score": 0.1})
    assert status == 404 and body["error"]["type"] == "invalid_request_error"
    status, unknown = await _feedback(http, base, acme, {"request_id": "req_nope", "score": 0.1})
    assert status == 404 and unknown["error"]["message"].startswith("no call")

    # No key: 401; the tenant's own call with a numeric score: replaced, not duplicated.
    async with http.post(base + "/v1/sluice/feedback", json={"request_id": acme_call}) as r:
        assert r.status == 401
    status, _ = await _feedback(
        http, base, globex, {"request_id": globex_call, "score": 0.25, "comment": "meh"}
    )
    assert status == 201
    status, _ = await _feedback(http, base, globex, {"request_id": globex_call, "score": 0.5})
    assert status == 201

    # Metrics count submissions per served model (both of globex's, replaced or not).
    async with http.get(base + "/metrics", headers=ADMIN) as resp:  # metrics_auth is on
        text = await resp.text()
    assert 'sluice_feedback_total{kind="up",model="gpt-4o-mini",route="gpt-4o-mini"} 1.0' in text
    assert 'sluice_feedback_total{kind="score",model="gpt-4o",route="gpt-4o"} 2.0' in text
    assert 'sluice_feedback_score_sum_total{model="gpt-4o",route="gpt-4o"} 0.75' in text

    store = records.removeprefix("sqlite:///")
    runner = CliRunner()
    out = Path(store).with_name("labelled.jsonl")
    result = runner.invoke(
        main, ["eval", "export", "--store", records, "--since", "1h", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(line) for line in out.read_text().splitlines()]
    by_id = {r["request_id"]: r for r in rows}
    assert len(rows) == 2
    assert by_id[acme_call]["tenant"] == "acme" and by_id[acme_call]["model"] == "gpt-4o-mini"
    assert by_id[acme_call]["input_preview"] == "hello feedback"
    assert by_id[globex_call]["score"] == 0.5 and by_id[globex_call]["comment"] is None

    result = runner.invoke(
        main, ["eval", "feedback", "--store", records, "--by", "model", "--json"]
    )
    assert result.exit_code == 0, result.output
    groups = {g["group"]: g for g in orjson.loads(result.output)["groups"]}
    assert groups["gpt-4o-mini"]["mean_score"] == 1.0 and groups["gpt-4o-mini"]["thumbs_up"] == 1
    assert groups["gpt-4o"]["feedback"] == 1 and groups["gpt-4o"]["mean_score"] == 0.5

    # `sluice report --by model` adds the feedback rate of each model: feedback / calls.
    result = runner.invoke(main, ["report", "--store", records, "--by", "model", "--json"])
    assert result.exit_code == 0, result.output
    rates = {r["group"]: r for r in orjson.loads(result.output)["feedback"]}
    assert rates["gpt-4o-mini"]["calls"] == 1 and rates["gpt-4o-mini"]["feedback_rate"] == 1.0
    assert rates["gpt-4o"]["feedback"] == 1 and rates["gpt-4o"]["mean_score"] == 0.5
    result = runner.invoke(main, ["report", "--store", records, "--by", "route"])
    assert result.exit_code == 0, result.output
    assert "User feedback" in result.output and "100.0%" in result.output


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"request_id": "x"}, "body"),  # neither score nor thumbs
        ({"request_id": "x", "score": 1.5}, "score"),
        ({"request_id": "x", "thumbs": "sideways"}, "thumbs"),
        ({"request_id": "x", "score": 1, "comment": "c" * (MAX_COMMENT_CHARS + 1)}, "comment"),
        ({"request_id": "x", "score": 1, "tags": [f"t{i}" for i in range(MAX_TAGS + 1)]}, "tags"),
        ({"request_id": "x", "score": 1, "tags": ["has space"]}, "tags"),
        ({"request_id": "x" * 200, "score": 1}, "request_id"),
        ({"request_id": "x", "score": 1, "extra": 1}, "extra"),
        (b"[1]", None),
        (b"{not json", None),
    ],
)
async def test_bad_feedback_is_a_clear_400(
    rig: tuple[str, aiohttp.ClientSession, str], body: Any, param: str | None
) -> None:
    base, http, _ = rig
    key = (await create_key(http, base, tenant="acme"))["key"]
    status, answer = await _feedback(http, base, key, body)
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error"
    if param is not None:
        assert answer["error"]["param"] == param


async def test_feedback_body_is_bounded(rig: tuple[str, aiohttp.ClientSession, str]) -> None:
    base, http, _ = rig
    key = (await create_key(http, base, tenant="acme"))["key"]
    status, answer = await _feedback(http, base, key, b"{" + b" " * 40_000 + b"}")
    assert status == 413, answer


async def test_feedback_in_postgresql(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    with postgres_schema() as url:
        config = _config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}", url)
        async with gateway(config) as (base, _), aiohttp.ClientSession() as http:
            key = (await create_key(http, base, tenant="acme"))["key"]
            call = await _call(base, key)
            status, body = await _feedback(http, base, key, {"request_id": call, "score": 0.75})
            assert status == 201, body
        result = CliRunner().invoke(main, ["eval", "export", "--store", url, "--since", "1h"])
        assert result.exit_code == 0, result.output
        (row,) = [orjson.loads(line) for line in result.output.splitlines()]
        assert row["request_id"] == call and row["score"] == 0.75 and row["tenant"] == "acme"


async def test_feedback_body_sent_in_pieces(rig: tuple[str, aiohttp.ClientSession, str]) -> None:
    """A chunked body (no content-length) of many small pieces is read whole, and an
    oversized one is refused as it streams in."""
    base, http, _ = rig
    key = (await create_key(http, base, tenant="acme"))["key"]
    call = await _call(base, key)
    body = orjson.dumps({"request_id": call, "score": 0.5, "comment": "x" * 1900})

    async def pieces(data: bytes) -> Any:
        for i in range(0, len(data), 100):
            yield data[i : i + 100]

    headers = {"authorization": f"Bearer {key}"}
    async with http.post(base + "/v1/sluice/feedback", data=pieces(body), headers=headers) as r:
        assert r.status == 201, await r.text()
    big = b'{"request_id": "x", "comment": "' + b"y" * 20_000 + b'"}'
    async with http.post(base + "/v1/sluice/feedback", data=pieces(big), headers=headers) as r:
        assert r.status == 413


async def test_another_tenant_reusing_a_request_id_cannot_hide_or_probe_a_call(
    rig: tuple[str, aiohttp.ClientSession, str],
) -> None:
    """A caller may choose its own `x-sluice-request-id`: a second tenant that sends a call
    under the first tenant's id must not take the first tenant's feedback away, and probing
    another tenant's id answers exactly like an unknown id (same 404, no faster)."""
    base, http, records = rig
    acme = (await create_key(http, base, tenant="acme"))["key"]
    globex = (await create_key(http, base, tenant="globex"))["key"]
    acme_call = await _call(base, acme)
    client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=globex, max_retries=0)
    try:
        await client.chat.completions.create(
            model="gpt-4o",
            messages=HELLO,  # type: ignore[arg-type]
            extra_headers={"x-sluice-request-id": acme_call},
        )
    finally:
        await client.close()
    await _feedback(http, base, globex, {"request_id": "warm-up", "score": 1})  # records flushed
    status, body = await _feedback(http, base, acme, {"request_id": acme_call, "score": 1})
    assert status == 201, body
    assert body["model"] == "gpt-4o-mini"
    # The labelled export joins acme's feedback to acme's call, not globex's look-alike.
    result = CliRunner().invoke(main, ["eval", "export", "--store", records, "--since", "1h"])
    assert result.exit_code == 0, result.output
    (row,) = [orjson.loads(line) for line in result.output.splitlines()]
    assert row["tenant"] == "acme" and row["model"] == "gpt-4o-mini"

    other = await _call(base, acme, model="gpt-4o")
    await _feedback(http, base, acme, {"request_id": other, "score": 1})  # written by now
    started = time.monotonic()
    status, body = await _feedback(http, base, globex, {"request_id": other, "score": 0})
    assert status == 404 and body["error"]["message"].startswith("no call")
    assert time.monotonic() - started >= RECORD_WAIT_S * 0.9  # not told apart by timing
