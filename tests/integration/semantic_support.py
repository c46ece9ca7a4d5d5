"""Shared setup for semantic cache tests against real gateways: the real embedder (or a skip
that says why), gateway configs with `cache.semantic` on, and the simulator's call count."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from sluice.config import SluiceConfig
from tests.conftest import gateway_config

QUESTION = "How do I cancel my subscription?"
PARAPHRASE = "How can I cancel my subscription?"  # cosine 0.9955 with MiniLM


async def real_embedder_or_skip() -> None:
    """Skip unless the offline MiniLM embedder loads and embeds on this machine."""
    try:
        from sluice.embed import get_embedder

        await get_embedder().embed(["probe"])
    except Exception as exc:
        pytest.skip(
            f"the MiniLM embedder is unavailable here ({exc!r}); see docs/guide/semantic-cache.md"
        )


def semantic_config(sim_url: str, **semantic: Any) -> SluiceConfig:
    data = gateway_config(sim_url).model_dump()
    data["cache"]["semantic"] = {"enabled": True, **semantic}
    return SluiceConfig.model_validate(data)


async def sim_requests(sim_url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(sim_url + "/sim/stats") as resp:
        return int((await resp.json())["requests_total"])
