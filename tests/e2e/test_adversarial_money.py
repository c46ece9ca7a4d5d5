"""Money through the endpoints added beside Chat Completions, against a keyed gateway with
limits on: a forwarded (priced) embeddings call counts against the key's hard budget like a
chat call does, so a tenant past its budget cannot keep spending through `/v1/embeddings`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest

from sluice.config import SluiceConfig
from tests.governance_rig import create_key, gateway, keyed_config, set_env

pytestmark = pytest.mark.e2e


@pytest.fixture
async def base(sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    set_env(monkeypatch)
    data = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}").model_dump()
    data["limits"]["enabled"] = True
    async with gateway(SluiceConfig.model_validate(data)) as (url, _):
        yield url


async def test_forwarded_embeddings_are_charged_against_a_hard_token_budget(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        key = (
            await create_key(
                http, base, tenant="cheap", budgets=[{"period": "total", "tokens": 300}]
            )
        )["key"]
        client = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
        text = "hello world " * 50  # ~100 tokens per call
        refused = None
        try:
            for _ in range(6):
                try:
                    await client.embeddings.create(model="gpt-4o-mini", input=text)
                except openai.RateLimitError as exc:
                    refused = exc
                    break
        finally:
            await client.close()
        assert refused is not None, "six ~100-token calls passed a 300-token hard budget"
        assert refused.code == "budget_exceeded"
        async with http.get(
            base + "/v1/sluice/usage", headers={"authorization": f"Bearer {key}"}
        ) as resp:
            (budget,) = (await resp.json())["budgets"]
        assert budget["spent"] >= 200 and budget["reserved"] == 0
