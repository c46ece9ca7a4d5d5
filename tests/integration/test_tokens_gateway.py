"""Token policy in a real gateway over loopback: the simulator upstream, the official SDKs.

The simulator's app gets a middleware that records every body it is sent, so the tests
assert what the upstream really saw (the summary, the turns kept), not what Sluice says.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from aiohttp import web
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from sluice import server
from sluice.cache.backends import RedisBackend
from sluice.config import SluiceConfig
from sluice.context.summarize import INSTRUCTIONS, SUMMARY_HEADING
from sluice.governance.keys import KeyCreate
from sluice.sim.config import SimConfig
from sluice.sim.server import create_app as create_sim
from tests.governance_rig import ADMIN, keyed_config, set_env
from tests.integration.test_cache_redis import redis_backend_or_skip

pytestmark = pytest.mark.integration

KEEP_TURNS = 2
HISTORY_BUDGET = 250
ANSWER_TOKENS = "20"  # x-sim-output-tokens: every simulated answer is this long
POLICIES: dict[str, Any] = {
    "gpt-4o-mini": {
        "policy": {
            "sessions": {
                "enabled": True,
                "keep_turns": KEEP_TURNS,
                "summarize_over_tokens": HISTORY_BUDGET,
                "summary_model": "claude-haiku",  # cheap, and on the other provider
                "summary_max_tokens": 64,
            }
        }
    },
    "gpt-4o": {
        "policy": {
            "default_max_tokens": 50,
            "max_tokens_ceiling": 200,
            "context": {"strategy": "reject", "max_input_tokens": 60},
        }
    },
    "claude-haiku": {"policy": {"context": {"strategy": "reject", "max_input_tokens": 60}}},
}


@dataclass
class Recorded:
    bodies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def chat(self) -> list[dict[str, Any]]:
        return [b for path, b in self.bodies if path.endswith("/chat/completions")]

    def summaries(self) -> list[dict[str, Any]]:
        return [
            b
            for path, b in self.bodies
            if path == "/v1/messages" and INSTRUCTIONS in str(b.get("system"))
        ]


@dataclass
class Rig:
    oai: AsyncOpenAI
    ant: AsyncAnthropic
    url: str
    seen: Recorded
    keys: dict[str, str]  # tenant -> a virtual key of that tenant


@pytest.fixture
async def recording_sim() -> AsyncIterator[tuple[str, Recorded]]:
    seen = Recorded()

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "POST":
            seen.bodies.append((request.path, orjson.loads(await request.read())))
        return await handler(request)

    app = create_sim(SimConfig(port=0))
    app.middlewares.append(record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


TENANTS = ("t1", "acme", "globex")


@pytest.fixture(params=["memory", "redis"])
async def rig(
    request: pytest.FixtureRequest,
    recording_sim: tuple[str, Recorded],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Rig]:
    """A gateway with virtual keys on: each tenant's calls carry a key of that tenant."""
    sim_url, seen = recording_sim
    set_env(monkeypatch)
    data = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}").model_dump()
    data["models"] = POLICIES
    if request.param == "redis":
        prefix = f"sluice-test:{uuid.uuid4().hex}:"
        await (await redis_backend_or_skip(prefix)).close()
        data["cache"] = {"backend": "redis", "key_prefix": prefix}
    app = server.create_app(SluiceConfig.model_validate(data))
    gateway = app[server.GATEWAY]
    runner, port = await server.start_app(app)  # migrates the key store
    assert gateway.governance.store is not None
    keys = {t: gateway.governance.store.create(KeyCreate(tenant=t))[1] for t in TENANTS}
    url = f"http://127.0.0.1:{port}"
    headers = {"x-sim-output-tokens": ANSWER_TOKENS}
    oai = AsyncOpenAI(
        base_url=url + "/v1", api_key=keys["t1"], max_retries=0, default_headers=headers
    )
    ant = AsyncAnthropic(base_url=url, api_key=keys["t1"], max_retries=0, default_headers=headers)
    yield Rig(oai, ant, url, seen, keys)
    await oai.close()
    await ant.close()
    if isinstance(gateway.cache_backend, RedisBackend):
        await gateway.cache_backend.clear()
    await runner.cleanup()


def _question(turn: int) -> str:
    return f"Turn {turn}: we decided to use option {turn}; what should we check next for it?"


@dataclass
class Turn:
    prompt_tokens: int  # as the upstream reported them
    summarized: bool  # a summary call was made before this turn was sent


async def _ask(rig: Rig, turn: int, session: str, tenant: str = "t1", stream: bool = False) -> Turn:
    headers = {"x-sluice-session": session, "authorization": f"Bearer {rig.keys[tenant]}"}
    messages: Any = [{"role": "user", "content": _question(turn)}]
    if not stream:
        raw = await rig.oai.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages, extra_headers=headers
        )
        resp = raw.parse()
        assert resp.usage is not None
        return Turn(resp.usage.prompt_tokens, "x-sluice-summary-calls" in raw.headers)
    chunks = await rig.oai.chat.completions.create(
        model="gpt-4o-mini",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=headers,
    )
    prompt = 0
    async for chunk in chunks:
        if chunk.usage is not None:
            prompt = chunk.usage.prompt_tokens
    return Turn(prompt, False)


def _users(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


async def test_a_ten_turn_session_sends_summary_plus_latest_turns(rig: Rig) -> None:
    # Turn 3 streams: its answer is stored when the stream ends.
    turns = [await _ask(rig, t, "conv-1", stream=t == 3) for t in range(10)]
    chats = rig.seen.chat()
    assert len(chats) == 10
    for t, body in enumerate(chats):  # every turn: consecutive stored turns, then the new one
        users = _users(body)
        assert users == [_question(t - len(users) + 1 + i) for i in range(len(users))]
    folded = [t for t, turn in enumerate(turns) if turn.summarized]
    assert folded, "the history never went over its budget"
    for t in folded:  # right after a summary: exactly the last KEEP_TURNS turns + the new one
        assert len(_users(chats[t])) == KEEP_TURNS + 1
        assert SUMMARY_HEADING in str(chats[t]["messages"][0]["content"])
    last = chats[-1]["messages"]
    assert last[0]["role"] == "system"  # the running summary opens the prompt (no caller system)
    assert SUMMARY_HEADING in str(last[0]["content"])
    assert len(_users(chats[-1])) < 10
    # One summary per fold, made by the cheap model, and the first one holds the first turn.
    summaries = rig.seen.summaries()
    assert len(summaries) == len(folded)
    assert all(s["model"] == "claude-3-5-haiku-latest" for s in summaries)
    assert _question(0) in str(summaries[0]["messages"])
    # Tokens stay bounded: stored turns ≤ budget (+ the turn that crossed it), the summary
    # ≤ its cap, plus the new turn; without sessions the prompt would grow every turn.
    prompts = [t.prompt_tokens for t in turns]
    pair = max(prompts[1] - prompts[0], 1)
    assert max(prompts) <= prompts[0] + HISTORY_BUDGET + pair + 64 + 10
    assert prompts[-1] < prompts[0] + 9 * pair


async def test_sessions_are_isolated_per_tenant(rig: Rig) -> None:
    await _ask(rig, 0, "shared-id", tenant="acme")
    await _ask(rig, 1, "shared-id", tenant="acme")
    await _ask(rig, 7, "shared-id", tenant="globex")
    chats = rig.seen.chat()
    acme_second = [m["content"] for m in chats[1]["messages"] if m["role"] == "user"]
    globex = [m["content"] for m in chats[2]["messages"] if m["role"] == "user"]
    assert acme_second == [_question(0), _question(1)]
    assert globex == [_question(7)]


async def test_without_a_session_header_nothing_is_stored(rig: Rig) -> None:
    for turn in range(2):
        await rig.oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": _question(turn)}]
        )
    assert len(rig.seen.chat()[1]["messages"]) == 1


async def test_reject_is_a_400_in_each_wire_format(rig: Rig) -> None:
    long = "please read this long text " * 40
    with pytest.raises(openai.BadRequestError) as oai_err:
        await rig.oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": long}]
        )
    assert oai_err.value.status_code == 400
    assert oai_err.value.code == "context_length_exceeded"
    assert "budget" in oai_err.value.message
    with pytest.raises(anthropic.BadRequestError) as ant_err:
        await rig.ant.messages.create(
            model="claude-haiku", max_tokens=50, messages=[{"role": "user", "content": long}]
        )
    body = ant_err.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    assert rig.seen.bodies == []  # nothing went upstream


async def test_default_max_tokens_and_ceiling_reach_the_upstream(rig: Rig) -> None:
    short: Any = [{"role": "user", "content": "hi"}]
    await rig.oai.chat.completions.create(model="gpt-4o", messages=short)
    raw = await rig.oai.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=short, max_tokens=5000
    )
    sent = [b.get("max_tokens") or b.get("max_completion_tokens") for b in rig.seen.chat()]
    assert sent == [50, 200]
    assert raw.headers["x-sluice-max-tokens-capped"] == "5000->200"


async def test_the_estimate_ratio_is_exported(rig: Rig) -> None:
    await _ask(rig, 0, "metrics")
    await _ask(rig, 1, "metrics")
    async with (
        aiohttp.ClientSession() as http,
        http.get(rig.url + "/metrics", headers=ADMIN) as resp,  # metrics_auth is on by default
    ):
        text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith("sluice_token_estimate_ratio{"))
    assert 'model="gpt-4o-mini"' in line
    assert 0.25 <= float(line.rsplit(" ", 1)[1]) <= 4.0
