"""The real-model lane: llama.cpp's server with SmolLM2-135M (`sluice local-model`) behind
gateways started in-process from examples/local-llm.yaml. Behaviour is tested (tokens, streams,
errors, schemas, cancellation), never wording: the 135M model knows little."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sluice import server
from sluice.bench.processes import Child, start_local_model
from sluice.config import SluiceConfig, parse_config
from sluice.observe.store import RecordStore

N_CTX = 2048  # one slot: the window examples/local-llm.yaml must be told
EXAMPLE = Path(__file__).parents[2] / "examples" / "local-llm.yaml"


@dataclass
class LocalModel:
    url: str  # .../v1
    child: Child

    @property
    def root(self) -> str:
        return self.url.removesuffix("/v1")

    async def metrics(self) -> dict[str, float]:
        """llama.cpp's own counters (Prometheus text): the server's view of tokens."""
        async with aiohttp.ClientSession() as http, http.get(self.root + "/metrics") as resp:
            text = await resp.text()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("llamacpp:"):
                name, _, value = line.partition(" ")
                out[name.removeprefix("llamacpp:")] = float(value)
        return out

    async def busy_slots(self) -> int:
        async with aiohttp.ClientSession() as http, http.get(self.root + "/slots") as resp:
            slots = await resp.json()
        return sum(1 for slot in slots if slot["is_processing"])


@pytest.fixture(scope="session")
def local_model() -> Iterator[LocalModel]:
    pytest.importorskip("xllamacpp", reason="the real-model lane needs `pip install sluice[local]`")
    logs = Path(tempfile.mkdtemp(prefix="sluice-local-model-"))
    child = start_local_model(logs, extra=["--ctx", str(N_CTX), "--parallel", "1"])
    try:
        yield LocalModel(child.url, child)
    finally:
        child.stop()


# llama.cpp's answer while the model loads, as `sluice local-model` sends it.
LOADING_BODY = b'{"error":{"message":"Loading model","type":"unavailable_error","code":503}}'


@pytest.fixture
async def loading_url() -> AsyncIterator[str]:
    """A server that is forever loading its model."""

    async def loading(_: web.Request) -> web.Response:
        return web.Response(status=503, body=LOADING_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", loading)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
    await runner.cleanup()


def _test_models(data: dict[str, Any], loading_url: str) -> None:
    """Beside the example's `local`: a priced twin, one told a window bigger than the server
    has, and one whose server is still loading."""
    local = next(d for d in data["deployments"] if d["id"] == "local-smollm2")
    local["context_window"] = N_CTX
    data["providers"]["loading"] = {"kind": "openai", "api_base": loading_url}
    data["deployments"] += [
        {
            **local,
            "id": "local-priced",
            "serves": ["local-priced"],
            "price": {"input": 1.0, "output": 2.0},
        },
        {
            **local,
            "id": "local-overstated",
            "serves": ["local-overstated"],
            "context_window": 100_000,
        },
        {**local, "id": "local-loading", "provider": "loading", "serves": ["local-loading"]},
    ]
    data["models"]["local-loading"] = {"fallbacks": ["gpt-4o-mini"]}


def local_config(model_url: str, sim_url: str, loading_url: str, **overrides: Any) -> SluiceConfig:
    """examples/local-llm.yaml as a user runs it, with the window set to this server's n_ctx,
    the test models added and per-test overrides merged in at the top level."""
    env = {"LOCAL_LLM_URL": model_url, "SLUICE_SIM_URL": sim_url}
    data = parse_config(EXAMPLE.read_text(), str(EXAMPLE), env).model_dump()
    _test_models(data, loading_url)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return SluiceConfig.model_validate(data)


@dataclass
class Gateway:
    url: str
    records_db: str

    def records(self) -> RecordStore:
        return RecordStore.open(self.records_db)


StartGateway = Callable[..., AbstractAsyncContextManager[Gateway]]


@pytest.fixture
def gateway(
    local_model: LocalModel, sim_url: str, loading_url: str, tmp_path: Path
) -> StartGateway:
    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[Gateway]:
        db = f"sqlite:///{tmp_path / 'records.db'}"
        config = local_config(local_model.url, sim_url, loading_url, **overrides)
        data = config.model_dump()
        data["observability"]["records"]["store_url"] = db
        runner, port = await server.start(SluiceConfig.model_validate(data))
        try:
            yield Gateway(f"http://127.0.0.1:{port}", db)
        finally:
            await runner.cleanup()  # flushes the records

    return start
