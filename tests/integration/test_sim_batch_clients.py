"""`sluice.providers.batch_clients` against the simulator's batch APIs: submit, poll,
results (answers with usage, failed items, expiry), cancel, a 5xx on poll as a typed error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from sluice.config import AnthropicProviderConfig, OpenAIProviderConfig, ProviderConfig
from sluice.errors import UpstreamStatusError
from sluice.providers.batch_clients import BatchClient, BatchItem, make_batch_client
from sluice.sim.config import SimConfig
from sluice.sim.server import running

pytestmark = pytest.mark.integration


@pytest.fixture
async def sim_base() -> AsyncIterator[str]:
    async with running(SimConfig(port=0)) as sim:
        yield sim.url


def _cfg(kind: str, base: str, **headers: str) -> ProviderConfig:
    if kind == "openai":
        return OpenAIProviderConfig(kind="openai", api_base=base + "/v1", headers=headers)
    return AnthropicProviderConfig(kind="anthropic", api_base=base, headers=headers)


def _items(kind: str, n: int) -> list[BatchItem]:
    out = []
    for i in range(n):
        body: dict[str, Any] = {
            "model": "gpt-4o-mini" if kind == "openai" else "claude-3-5-haiku-latest",
            "messages": [{"role": "user", "content": f"item {i}"}],
        }
        if kind == "anthropic":
            body["max_tokens"] = 50
        out.append(BatchItem(f"c{i}", body))
    return out


async def _client(kind: str, base: str, **headers: str) -> BatchClient:
    return make_batch_client("sim-" + kind, _cfg(kind, base, **headers))


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_submit_poll_results(kind: str, sim_base: str) -> None:
    client = await _client(kind, sim_base, **{"x-sim-batch-fail-every": "3"})
    try:
        batch_id = await client.submit(_items(kind, 6), metadata={"sluice_batch": "b1"})
        status = await client.poll(batch_id)
        assert status.done and status.total == 6
        assert (status.succeeded, status.failed) == (4, 2)
        results = {r.custom_id: r async for r in client.results(batch_id)}
        assert set(results) == {f"c{i}" for i in range(6)}
        for cid in ("c2", "c5"):
            assert not results[cid].ok and results[cid].status_code == 500
            assert results[cid].error and results[cid].usage is None
        good = results["c0"]
        assert good.ok and good.status_code == 200 and good.body is not None
        assert good.usage is not None
        assert good.usage.input_tokens > 0 and good.usage.output_tokens > 0
    finally:
        await client.close()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_expired_batch_reports_every_item_failed(kind: str, sim_base: str) -> None:
    client = await _client(kind, sim_base, **{"x-sim-batch-expire": "1"})
    try:
        batch_id = await client.submit(_items(kind, 3))
        status = await client.poll(batch_id)
        assert status.done and status.succeeded == 0 and status.failed == 3
        results = [r async for r in client.results(batch_id)]
        assert len(results) == 3 and not any(r.ok for r in results)
        assert all(r.status_code == 0 for r in results)
    finally:
        await client.close()


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_cancel_and_poll_5xx(kind: str, sim_base: str) -> None:
    client = await _client(
        kind, sim_base, **{"x-sim-batch-duration-ms": "3600000", "x-sim-batch-poll-5xx": "1"}
    )
    try:
        batch_id = await client.submit(_items(kind, 2))
        with pytest.raises(UpstreamStatusError) as caught:
            await client.poll(batch_id)
        assert caught.value.upstream_status == 500
        running_status = await client.poll(batch_id)
        assert running_status.state == "running" and not running_status.done
        cancelling = await client.cancel(batch_id)
        assert cancelling.state == "cancelling"
        ended = await client.poll(batch_id)
        assert ended.done and ended.succeeded == 0
        assert [r async for r in client.results(batch_id) if r.ok] == []
    finally:
        await client.close()


async def test_unknown_batch_is_a_404_error(sim_base: str) -> None:
    client = await _client("openai", sim_base)
    try:
        with pytest.raises(UpstreamStatusError) as caught:
            await client.poll("batch_nope")
        assert caught.value.upstream_status == 404
    finally:
        await client.close()
