"""Agent loop guards: a runaway agent is stopped by steps or by dollars, per parent id."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from sluice import server
from sluice.cost.compute import compute_cost
from sluice.cost.prices import resolve_price
from sluice.pipeline.context import CallContext
from sluice.types import CallMeta, ChatRequest, Message, TextPart, Usage
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration

BODY = {
    "model": "gpt-4o-mini",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "next step"}],
}


async def start(sim_url: str, **agent: Any) -> tuple[Any, str]:
    config = gateway_config(sim_url)
    data = config.model_dump()
    data["reliability"]["agent"] = {**data["reliability"]["agent"], **agent}
    runner, port = await server.start(config.model_validate(data))
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, url: str, parent: str | None, body: dict[str, Any] = BODY
) -> tuple[int, dict[str, Any]]:
    headers = {"x-sluice-parent-request-id": parent} if parent else {}
    async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
        return r.status, await r.json()


async def test_step_limit_per_parent(sim_url: str, http: aiohttp.ClientSession) -> None:
    runner, url = await start(sim_url, max_steps=3)
    try:
        assert [(await call(http, url, "agent-1"))[0] for _ in range(3)] == [200, 200, 200]
        status, body = await call(http, url, "agent-1")
        assert status == 403 and body["error"]["code"] == "agent_step_limit"
        assert "agent-1" in body["error"]["message"]
        assert (await call(http, url, "agent-2"))[0] == 200  # another agent is unaffected
        assert (await call(http, url, None))[0] == 200  # calls without a parent are not counted
        via_metadata = {**BODY, "metadata": {"parent_request_id": "agent-1"}}
        assert (await call(http, url, None, via_metadata))[0] == 403
    finally:
        await runner.cleanup()


async def test_cost_limit_per_parent(sim_url: str, http: aiohttp.ClientSession) -> None:
    """Each step reserves its worst case (max_tokens at the model's price), so the run never
    spends past the limit — checking only before each step let it end above."""
    limit = Decimal("0.0001")  # about three gpt-4o-mini steps' worst cases (50 tokens out)
    runner, url = await start(sim_url, max_cost_usd=float(limit))
    gateway = runner.app[server.GATEWAY]
    guard = next(s for s in _stages(gateway) if type(s).__name__ == "AgentGuardStage")
    try:
        statuses: list[int] = []
        status, body = 0, dict[str, Any]()
        for _ in range(40):
            status, body = await call(http, url, "spender")
            statuses.append(status)
            if status != 200:
                break
        assert status == 403 and body["error"]["code"] == "agent_cost_limit"
        steps, spent = guard.snapshot("spender")
        assert steps >= 2 and statuses.count(200) == steps
        assert Decimal(0) < spent <= limit  # never past the limit
    finally:
        await runner.cleanup()


def _stages(gateway: Any) -> list[Any]:
    return list(gateway.stages)


async def test_settle_costs_every_call_and_streams_at_their_end(sim_url: str) -> None:
    runner, _ = await server.start(gateway_config(sim_url))
    gateway = runner.app[server.GATEWAY]
    try:
        for stream in (False, True):
            req = ChatRequest(
                "gpt-4o-mini",
                [Message("user", [TextPart("price me")])],
                stream=stream,
                meta=CallMeta(request_id="t"),
            )
            ctx = CallContext(req)
            result = await gateway.handler(ctx)
            if stream:
                assert ctx.cost_usd is None and ctx.usage == Usage()  # not settled yet
                async for _ in result:  # type: ignore[union-attr]
                    pass
            dep = gateway.runtime.deployments["sim-gpt-4o-mini"]
            price = resolve_price(dep.price, "openai", dep.model)
            assert ctx.usage.output_tokens > 0
            assert ctx.cost_usd == compute_cost(ctx.usage, price)
            assert ctx.cost_usd is not None and ctx.cost_usd > 0
    finally:
        await runner.cleanup()
