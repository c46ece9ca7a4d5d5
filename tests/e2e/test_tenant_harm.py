"""One tenant cannot take a model down for another (issue 14 §2), with the openai SDK and
virtual keys: a tenant's own tight deadlines never eject the deployment, and agent run ids
are the caller's names, scoped by tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from sluice.config import SluiceConfig
from tests.governance_rig import create_key, gateway, keyed_config, set_env

pytestmark = pytest.mark.integration

ASK: Any = [{"role": "user", "content": "hello"}]


def config(sim_url: str, tmp_path: Path) -> SluiceConfig:
    data = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}").model_dump()
    data["reliability"]["agent"]["max_steps"] = 2
    data["cache"]["exact"]["enabled"] = False
    data["cache"]["semantic"]["enabled"] = False
    return SluiceConfig.model_validate(data)


async def test_one_tenants_deadlines_and_runs_do_not_harm_another(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_env(monkeypatch)
    async with gateway(config(sim_url, tmp_path)) as (base, _app), aiohttp.ClientSession() as http:
        key_a = (await create_key(http, base, tenant="tenant-a"))["key"]
        key_b = (await create_key(http, base, tenant="tenant-b"))["key"]
        a = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key_a, max_retries=0)
        b = openai.AsyncOpenAI(base_url=base + "/v1", api_key=key_b, max_retries=0)
        async with a, b:
            slow = {"x-sim-ttft-ms": "150", "x-sluice-timeout-ms": "10"}
            for _ in range(8):  # tenant A's own 10 ms deadline against a 150 ms upstream
                with pytest.raises(openai.APIStatusError) as err:
                    await a.chat.completions.create(
                        model="gpt-4o-mini", messages=ASK, extra_headers=slow
                    )
                assert err.value.status_code == 504
            async with http.get(base + "/readyz") as r:
                assert (await r.json())["deployments"]["sim-gpt-4o-mini"] == "closed"
            ok = await b.chat.completions.create(model="gpt-4o-mini", messages=ASK)
            assert ok.choices[0].message.content

            run = {"x-sluice-parent-request-id": "run-42"}
            for _ in range(2):
                await a.chat.completions.create(
                    model="gpt-4o-mini", messages=ASK, extra_headers=run
                )
            with pytest.raises(openai.PermissionDeniedError) as refused:
                await a.chat.completions.create(
                    model="gpt-4o-mini", messages=ASK, extra_headers=run
                )
            assert refused.value.code == "agent_step_limit"
            # Tenant B's run-42 is its own: not blocked, and nothing says A's exists.
            for _ in range(2):
                await b.chat.completions.create(
                    model="gpt-4o-mini", messages=ASK, extra_headers=run
                )
