"""A gateway with its batch store on PostgreSQL, stopped right after it started, closes
every connection it opened (h-forward-money): no unraisable ResourceWarning.

The runner's housekeeping reads the store in a worker thread from the start. Stopping
cancelled the housekeeping task, but not its thread; the store then disposed of the engine
while that thread still had a connection checked out, and the connection was later
garbage-collected open ("psycopg.Connection ... was deleted while still open")."""

from __future__ import annotations

import asyncio
import gc
import warnings

import pytest

from sluice.config import SluiceConfig
from tests.conftest import gateway_config
from tests.governance_rig import gateway, postgres_schema

pytestmark = pytest.mark.integration


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("wait_s", [0.0, 0.05, 0.5])
@pytest.mark.parametrize("shared", [True, False])
async def test_a_quick_stop_leaves_no_postgres_connection_open(
    sim_url: str, wait_s: float, shared: bool
) -> None:
    with postgres_schema() as url:
        data = gateway_config(sim_url).model_dump()
        data["batch"].update({"store_url": url})
        if shared:  # the files and the queue on the same database
            data["files"]["store_url"] = url
            data["queue"]["url"] = url
        config = SluiceConfig.model_validate(data)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with gateway(config):
                await asyncio.sleep(wait_s)
            await asyncio.sleep(0.2)  # a thread the stop left running would end meanwhile
            gc.collect()
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert leaks == []
