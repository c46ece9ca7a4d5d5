"""The simulator's HTTP server: routes, app factory, and ways to run it.

`create_app` builds a self-contained app (state in `app[STATE]`); `start`/`running` serve
it inside a test's event loop on a free port; `run` blocks (uvloop when installed).
Handler cancellation is switched on so abandoned streams and hangs are noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from sluice.sim import anthropic_wire, batches, openai_wire
from sluice.sim.chat import (
    JSON,
    STATE,
    anthropic_messages,
    error_response,
    headers_with,
    openai_chat,
)
from sluice.sim.config import SimConfig, default_config
from sluice.sim.embeddings import embeddings
from sluice.sim.openai_wire import WireError
from sluice.sim.state import SimState
from sluice.tokens import count_prompt

__all__ = ["STATE", "RunningSim", "create_app", "run", "running", "start"]


# --- endpoints ---------------------------------------------------------------------------


async def _count_tokens(request: web.Request) -> web.Response:
    try:
        body = orjson.loads(await request.read())
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            raise WireError("model: a model name is required", "model")
        body["max_tokens"] = 1
        prompt = anthropic_wire.parse_request(body)
    except orjson.JSONDecodeError:
        return error_response("anthropic", 400, "We could not parse the JSON body of your request.")
    except WireError as exc:
        return error_response("anthropic", 400, exc.message)
    tokens = count_prompt(prompt.texts, prompt.n_messages)
    return web.json_response({"input_tokens": tokens}, headers=headers_with(), dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _models(request: web.Request) -> web.Response:
    state = request.app[STATE]
    if "anthropic-version" in request.headers:
        body = anthropic_wire.models_body(state.model_names)
    else:
        body = openai_wire.models_body(state.model_names)
    return web.Response(body=body, content_type=JSON, headers=headers_with())


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "simulator": True}, headers=headers_with())


async def _stats(request: web.Request) -> web.Response:
    body = orjson.dumps(request.app[STATE].stats.to_json())
    return web.Response(body=body, content_type=JSON, headers=headers_with())


async def _reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    return web.json_response({"ok": True}, headers=headers_with())


async def _set_faults(request: web.Request) -> web.Response:
    """POST /sim/faults {"fault_rate": 0.3, "faults": ["500", "hang"], "hang_s": 5}: change
    fault injection on a running simulator (chaos tests switch an upstream off and on)."""
    state = request.app[STATE]
    try:
        body = orjson.loads(await request.read())
        update = {k: body[k] for k in ("fault_rate", "faults", "hang_s") if k in body}
        state.config = SimConfig.model_validate({**state.config.model_dump(), **update})
    except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400, headers=headers_with())
    config = state.config
    return web.json_response(
        {"fault_rate": config.fault_rate, "faults": list(config.faults), "hang_s": config.hang_s},
        headers=headers_with(),
    )


def create_app(config: SimConfig | None = None) -> web.Application:
    """A fresh simulator app; all of its state lives in `app[STATE]`."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = SimState(config or default_config())
    app.router.add_post("/v1/chat/completions", openai_chat)
    app.router.add_post("/chat/completions", openai_chat)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_post("/v1/messages/count_tokens", _count_tokens)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", _models)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/sim/stats", _stats)
    app.router.add_post("/sim/reset", _reset)
    app.router.add_post("/sim/faults", _set_faults)
    batches.install(app)  # OpenAI Files + Batches, Anthropic Message Batches
    return app


def _runner(app: web.Application, shutdown_timeout: float) -> web.AppRunner:
    # aiohttp >= 3.9 no longer cancels handlers when the client goes away; the simulator
    # needs it to notice abandoned streams and hangs.
    return web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=shutdown_timeout
    )


async def start(
    config: SimConfig | None = None, *, shutdown_timeout: float = 2.0
) -> tuple[web.AppRunner, int]:
    """Serve in the running loop; returns the runner (call `cleanup()`) and the real port.

    `config.port == 0` picks a free port.
    """
    config = config or default_config().model_copy(update={"port": 0})
    runner = _runner(create_app(config), shutdown_timeout)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = int(runner.addresses[0][1])
    return runner, port


@dataclass(slots=True)
class RunningSim:
    """A simulator serving in-process (see `running`)."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        """Base URL for Anthropic clients (they append /v1/messages)."""
        return f"http://{self.host}:{self.port}"

    @property
    def openai_url(self) -> str:
        """Base URL for OpenAI clients (they append /chat/completions)."""
        return f"{self.url}/v1"

    @property
    def state(self) -> SimState:
        return self.runner.app[STATE]


@contextlib.asynccontextmanager
async def running(config: SimConfig | None = None) -> AsyncIterator[RunningSim]:
    """`async with running() as sim:` — a simulator on a free loopback port."""
    config = config or default_config().model_copy(update={"port": 0})
    runner, port = await start(config)
    try:
        yield RunningSim(runner, config.host, port)
    finally:
        await runner.cleanup()


def run(config: SimConfig | None = None) -> None:
    """Serve until interrupted (blocking); uses uvloop when it is installed."""
    config = config or default_config()
    loop: asyncio.AbstractEventLoop | None = None
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = None

    def announce(text: str) -> None:
        sys.stderr.write(text + "\n")

    announce(
        f"Sluice upstream SIMULATOR (not a real model) on http://{config.host}:{config.port} "
        "— OpenAI: /v1/chat/completions, Anthropic: /v1/messages"
    )
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=5.0,
        print=None,
        loop=loop,
    )
