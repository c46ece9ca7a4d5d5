"""Adversarial guardrail checks over real loopback: the Responses API front end, JSON mode,
what reaches logs and /metrics, blocked calls' records and charges."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from sluice import server
from sluice.config import SluiceConfig
from sluice.observe.store import RecordStore
from tests.conftest import gateway_config
from tests.e2e.test_guard_e2e import ATTACK, ECHO, EMAIL, PII_TEXT, Start, last_prompt, start

pytestmark = pytest.mark.e2e
__all__ = ["start"]


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_api_masks_and_restores(start: Start, sim_url: str, stream: bool) -> None:
    url = await start({"pii": {"mode": "mask"}})
    client = AsyncOpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
    try:
        if stream:
            text = ""
            events = await client.responses.create(
                model="gpt-4o-mini", input=PII_TEXT, stream=True, extra_headers=ECHO
            )
            async for event in events:
                if event.type == "response.output_text.delta":
                    text += event.delta
        else:
            resp = await client.responses.create(
                model="gpt-4o-mini", input=PII_TEXT, extra_headers=ECHO
            )
            text = resp.output_text
    finally:
        await client.close()
    seen = await last_prompt(sim_url)
    assert EMAIL not in seen and "<EMAIL_1>" in seen
    assert text.startswith(PII_TEXT)


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_api_block_is_a_400_with_the_code(start: Start, stream: bool) -> None:
    url = await start({"injection": {"mode": "block"}})
    client = AsyncOpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
    try:
        with pytest.raises(openai.BadRequestError) as err:
            resp: Any = await client.responses.create(
                model="gpt-4o-mini", input=ATTACK, stream=stream, extra_headers=ECHO
            )
            if stream:
                async for _ in resp:
                    pass
    finally:
        await client.close()
    assert err.value.code == "prompt_injection_detected"
    assert "ignore_previous" in err.value.message


async def test_blocked_calls_leave_a_record_charge_nothing_and_logs_hold_no_values(
    sim_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = f"sqlite:///{tmp_path / 'records.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    data["guardrails"] = {
        "pii": {"mode": "mask"},
        "injection": {"mode": "block"},
        "output": {"secrets": "block"},
    }
    caplog.set_level(logging.DEBUG)
    runner, port = await server.start(SluiceConfig.model_validate(data))
    url = f"http://127.0.0.1:{port}"
    secret = "sk-proj-Zq81xRtY0pLmN4vB7cK2wE9s"
    client = AsyncOpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
    try:
        with pytest.raises(openai.BadRequestError) as blocked:
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": ATTACK + " " + EMAIL}],
                extra_headers=ECHO,
            )
        assert blocked.value.response.headers.get("x-sluice-cost-usd") in (None, "0", "0.0")
        ok = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"{PII_TEXT} key {secret}"}],
            extra_headers=ECHO,
        )
        assert secret in (ok.parse().choices[0].message.content or "")  # the caller's own
        async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as m:
            metrics = await m.text()
    finally:
        await client.close()
        await runner.cleanup()
    store = RecordStore.open(db)
    try:
        records = [r for r in store.query() if r.kind == "call"]
    finally:
        store.close()
    assert len(records) == 2
    blocked_rec = next(r for r in records if "block" in (r.guards or ""))
    dumped = json.dumps(blocked_rec.to_json())
    ok_rec = next(r for r in records if r is not blocked_rec)
    assert "cost_usd" in blocked_rec.to_json()
    assert float(blocked_rec.to_json()["cost_usd"] or 0) == 0
    assert float(ok_rec.to_json()["cost_usd"] or 0) > 0  # the same field, charged
    everything = json.dumps([r.to_json() for r in records]) + caplog.text + metrics
    for value in (EMAIL, "7946 0958", secret):
        assert value not in everything, value
    assert "prompt_injection" in dumped


async def test_an_answer_blocked_by_an_output_check_keeps_its_upstream_cost(
    sim_url: str, tmp_path: Path
) -> None:
    """The provider was paid for the withheld answer: the call record must say so (and the
    secret itself never reaches the record)."""
    db = f"sqlite:///{tmp_path / 'records.db'}"
    data = gateway_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    data["guardrails"] = {"output": {"secrets": "block"}}
    runner, port = await server.start(SluiceConfig.model_validate(data))
    secret = "sk-proj-Zq81xRtY0pLmN4vB7cK2wE9s"
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    try:
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"my key is {secret}"}],
                extra_headers=ECHO,
            )
        assert err.value.code == "output_blocked"
    finally:
        await client.close()
        await runner.cleanup()
    store = RecordStore.open(db)
    try:
        records = [r.to_json() for r in store.query() if r.kind == "call"]
    finally:
        store.close()
    assert len(records) == 1
    assert float(records[0]["cost_usd"] or 0) > 0
    assert secret not in json.dumps(records)


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
async def test_a_long_private_key_never_streams_out(start: Start, sdk: str) -> None:
    """Real streaming: a 1.6 KB PEM key (longer than the 256-character window) echoed back
    by the model; before the fix its body went out while its END line had not arrived."""
    from anthropic import AsyncAnthropic

    body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" * 30
    pem = f"-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----"
    url = await start({"output": {"secrets": "block"}})
    got: list[str] = []
    if sdk == "openai":
        oai = AsyncOpenAI(base_url=url + "/v1", api_key="sk-test", max_retries=0)
        try:
            with pytest.raises(openai.APIError):
                stream = await oai.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"store {pem}"}],
                    stream=True,
                    extra_headers=ECHO,
                )
                async for chunk in stream:
                    if chunk.choices:
                        got.append(chunk.choices[0].delta.content or "")
        finally:
            await oai.close()
    else:
        ant = AsyncAnthropic(base_url=url, api_key="sk-test", max_retries=0)
        try:
            with pytest.raises(Exception) as err:
                async with ant.messages.stream(
                    model="claude-haiku",
                    max_tokens=300,
                    messages=[{"role": "user", "content": f"store {pem}"}],
                    extra_headers=ECHO,
                ) as events:
                    async for text in events.text_stream:
                        got.append(text)
            assert "withheld" in str(err.value)
        finally:
            await ant.close()
    assert "MIIEvQ" not in "".join(got)
