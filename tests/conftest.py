"""Shared fixtures: the simulator and the gateway, both real HTTP servers on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from hypothesis import HealthCheck, settings

from sluice import server
from sluice.config import SluiceConfig, default_config

# Input generation is timed by hypothesis; on a loaded 2-core machine (CI beside other jobs)
# that health check fails tests whose properties hold. Examples are not fewer for it.
settings.register_profile("sluice", suppress_health_check=[HealthCheck.too_slow], deadline=None)
settings.load_profile("sluice")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`: `-n 4 --dist loadgroup`), tests spread one by one over
    the workers, except those that share a costly fixture of a wider scope than the test (a
    model loaded once a module, the llama.cpp server once a session, gateways started once a
    module): each such set runs on one worker, so the fixture starts once, not once a worker."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # set in each worker as it collects
        return
    first: set[str] = set()
    for item in items:
        group = _shared_fixture_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        if item.get_closest_marker("slow") is not None or group in _SESSION_GROUPS:
            first.add(item.nodeid)
    # Workers take tests in this order: the long ones first, so that none of them starts
    # near the end and leaves the other workers idle while it runs alone.
    items.sort(key=lambda item: item.nodeid not in first)


_SESSION_GROUPS: set[str | None] = set()


def _shared_fixture_group(item: pytest.Item) -> str | None:
    """The file whose tests share a module- or class-scoped fixture with this test, or the
    directory whose tests share a session-scoped one (from that directory's conftest). The
    root conftest's session fixtures are cheap and per worker anyway; plugins' are ignored."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    group = None
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name)
        if not defs:
            continue
        fixture = defs[-1]
        if fixture.baseid in ("", "tests"):
            continue  # a plugin's, or the root conftest's
        if fixture.scope in ("session", "package"):
            _SESSION_GROUPS.add(fixture.baseid)  # e.g. the llama.cpp server: minutes of tests
            return str(fixture.baseid)
        if fixture.scope in ("module", "class"):
            group = item.nodeid.split("::", 1)[0]
    return group


@dataclass
class Servers:
    sim_url: str
    gateway_url: str
    http: aiohttp.ClientSession

    async def sim_stats(self) -> dict:  # type: ignore[type-arg]
        async with self.http.get(self.sim_url + "/sim/stats") as resp:
            return await resp.json()  # type: ignore[no-any-return]


def gateway_config(sim_url: str, **server: object) -> SluiceConfig:
    config = default_config({"SLUICE_SIM_URL": sim_url})
    if server:
        config = config.model_copy(update={"server": config.server.model_copy(update=server)})
    return config


@pytest.fixture(scope="session", autouse=True)
def _session_state_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A state_dir for what module- and session-scoped fixtures start (they run before the
    per-test one below): without it they used ~/.local/share/sluice, shared by every
    checkout on the machine — one branch's migration there broke another's test run."""
    before = os.environ.get("SLUICE_STATE_DIR")
    os.environ["SLUICE_STATE_DIR"] = str(tmp_path_factory.mktemp("session-state"))
    yield
    if before is None:
        os.environ.pop("SLUICE_STATE_DIR", None)
    else:
        os.environ["SLUICE_STATE_DIR"] = before


@pytest.fixture(autouse=True)
def _own_working_and_state_directory(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test runs in its own directory with its own state_dir, so the embedded SQLite
    stores (`sqlite:///sluice.db`, relative to state_dir) of the gateways it starts never
    leak between tests, nor into the user's ~/.local/share/sluice."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    monkeypatch.setenv("SLUICE_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    from sluice.sim.config import SimConfig
    from sluice.sim.server import start as start_sim

    runner, port = await start_sim(SimConfig(port=0))
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def servers(sim_url: str) -> AsyncIterator[Servers]:
    runner, port = await server.start(gateway_config(sim_url, max_body_bytes=64 * 1024))
    async with aiohttp.ClientSession() as http:
        yield Servers(sim_url, f"http://127.0.0.1:{port}", http)
    await runner.cleanup()
