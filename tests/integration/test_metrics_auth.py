"""`observability.metrics_auth`: metrics and alerts are for operators (the admin key)."""

from __future__ import annotations

import aiohttp
import pytest

from sluice import server
from sluice.config import SluiceConfig
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration

ADMIN = "admin-key-for-metrics-test-0123456789"


async def statuses(port: int, headers: dict[str, str]) -> dict[str, int]:
    out = {}
    async with aiohttp.ClientSession() as http:
        for path in ("/metrics", "/v1/sluice/alerts", "/healthz"):
            async with http.get(f"http://127.0.0.1:{port}{path}", headers=headers) as resp:
                out[path] = resp.status
    return out


@pytest.mark.parametrize("protected", [True, False])
async def test_metrics_and_alerts_need_the_admin_key_when_protected(
    sim_url: str, monkeypatch: pytest.MonkeyPatch, protected: bool
) -> None:
    monkeypatch.setenv("SLUICE_ADMIN_KEY", ADMIN)
    data = gateway_config(sim_url).model_dump()
    data["observability"]["metrics_auth"] = protected
    runner, port = await server.start(SluiceConfig.model_validate(data))
    try:
        anonymous = await statuses(port, {})
        admin = await statuses(port, {"Authorization": f"Bearer {ADMIN}"})
        wrong = await statuses(port, {"Authorization": "Bearer not-the-key"})
    finally:
        await runner.cleanup()
    assert admin == {"/metrics": 200, "/v1/sluice/alerts": 200, "/healthz": 200}
    if protected:
        assert anonymous == wrong == {"/metrics": 401, "/v1/sluice/alerts": 401, "/healthz": 200}
    else:
        assert anonymous == wrong == admin
