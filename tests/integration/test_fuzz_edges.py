"""Fuzzing the edge (hypothesis): both front ends, auth on, limits in Redis, records and the
ledger in PostgreSQL. Whatever a caller sends: no 5xx, an error body in the caller's format,
no lost record or ledger row of the well-formed calls sent alongside, /metrics bounded.

The default suite runs a few dozen cases; `SLUICE_FUZZ_EXAMPLES=10000` runs the benchmark
figure in BENCHMARKS.md ("Hostile input fuzz").
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice import server
from sluice.sim.config import SimConfig
from sluice.sim.server import start as start_sim
from tests.governance_rig import ADMIN, create_key, postgres_schema, set_env
from tests.hostile_rig import hostile_config

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("SLUICE_FUZZ_EXAMPLES", "40"))
OPENAI, ANTHROPIC = "/v1/chat/completions", "/v1/messages"


@dataclass
class Target:
    url: str
    key: str
    store_url: str
    loop: asyncio.AbstractEventLoop
    http: aiohttp.ClientSession
    good_ids: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def run(self, coro: Any) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout=60)


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with pytest.MonkeyPatch.context() as env:  # undone after the module: no leak to others
        set_env(env)
        yield from _target()


def _target() -> Iterator[Target]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    with postgres_schema() as store_url:

        async def up() -> tuple[Any, Any, Target]:
            sim, sim_port = await start_sim(SimConfig(port=0))
            prefix = f"sluice-test:fuzz:{uuid.uuid4().hex}:"
            config = hostile_config(f"http://127.0.0.1:{sim_port}", store_url, prefix)
            gw, port = await server.start(config)
            http = aiohttp.ClientSession()
            base = f"http://127.0.0.1:{port}"
            key = await create_key(http, base, budgets=[{"usd": 100000, "period": "total"}])
            return sim, gw, Target(base, key["key"], store_url, loop, http)

        sim, gw, t = asyncio.run_coroutine_threadsafe(up(), loop).result(60)
        try:
            yield t
        finally:

            async def down() -> None:
                await t.http.close()
                await gw.cleanup()
                await sim.cleanup()

            asyncio.run_coroutine_threadsafe(down(), loop).result(60)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


# --- strategies ------------------------------------------------------------------------------

nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=200, max_size=400),
    st.sampled_from(["gpt-4o-mini", "claude-haiku", "", "\x00", "a\x00b", "x" * 300]),
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 10**19]),
)
leaf = st.one_of(st.none(), st.booleans(), numbers, nasty_text)
json_value = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "bogus"])},
    optional={"content": st.one_of(nasty_text, json_value)},
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(nasty_text, json_value),
        "messages": st.one_of(st.lists(message, max_size=3), json_value),
        "max_tokens": numbers,
        "temperature": numbers,
        "top_logprobs": json_value,
        "stream": st.booleans(),
        "user": nasty_text,
        "metadata": json_value,
        "stop": json_value,
        "tools": json_value,
        "response_format": json_value,
    },
)


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
    path = draw(st.sampled_from([OPENAI, ANTHROPIC]))
    body: Any = draw(fields)
    if draw(st.booleans()):  # mostly well-formed around the hostile part
        body = {
            "model": "gpt-4o-mini" if path == OPENAI else "claude-haiku",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
            **body,
        }
    shape = draw(st.sampled_from(["json", "deep", "garbage", "gzip", "bad-gzip", "huge-int"]))
    if shape == "deep":
        depth = draw(st.integers(60, 400))
        raw = dumps(body)[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
    elif shape == "garbage":
        raw = draw(st.binary(max_size=200))
    elif shape == "huge-int":
        raw = dumps(body)[:-1] + b',"max_tokens":' + b"9" * draw(st.integers(19, 40)) + b"}"
    else:
        raw = dumps(body)
    headers = {"content-type": "application/json"}
    if shape == "gzip":
        raw, headers["content-encoding"] = gzip.compress(raw), "gzip"
    elif shape == "bad-gzip":
        headers["content-encoding"] = draw(st.sampled_from(["gzip", "deflate", "br", "zstd"]))
    for name in ("x-sluice-user", "x-sluice-feature", "x-sluice-session"):
        if draw(st.booleans()):
            headers[name] = draw(header_text)
    return path, raw, headers


def dumps(body: Any) -> bytes:
    """Python's encoder: it writes what orjson refuses (integers past 64 bits, Infinity)."""
    return json.dumps(body).encode()


async def send(t: Target, path: str, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    auth = (
        {"authorization": f"Bearer {t.key}"}
        if path == OPENAI
        else {"x-api-key": t.key, "anthropic-version": "2023-06-01"}
    )
    async with t.http.post(t.url + path, data=raw, headers={**headers, **auth}) as resp:
        return resp.status, await resp.read()


async def good_call(t: Target) -> int:
    rid = "good-" + uuid.uuid4().hex
    t.good_ids.append(rid)
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "ok"}]}
    headers = {"content-type": "application/json", "x-sluice-request-id": rid}
    status, _ = await send(t, OPENAI, orjson.dumps(body), headers)
    return status


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(case=hostile())
def test_fuzzed_calls_never_5xx_and_never_cost_others_rows(
    target: Target, case: tuple[str, bytes, dict[str, str]]
) -> None:
    path, raw, headers = case

    async def both() -> tuple[tuple[int, bytes], int]:
        hostile_call = send(target, path, raw, headers)
        return await asyncio.gather(hostile_call, good_call(target))

    (status, body), good = target.run(both())
    target.statuses[status] = target.statuses.get(status, 0) + 1
    assert status < 500, (status, body[:300])
    assert good == 200
    if status >= 400 and status != 405:
        parsed = orjson.loads(body)
        assert parsed["type"] == "error" if path == ANTHROPIC else "error" in parsed


def test_after_the_fuzz_no_row_lost_and_metrics_bounded(target: Target) -> None:
    """Runs after the fuzz (file order): every well-formed call has its record and ledger row."""
    if not target.good_ids:
        pytest.skip("the fuzz test did not run")
    from sqlalchemy import bindparam, create_engine, text

    time.sleep(1.5)  # records flush every 0.5 s, the ledger every 0.05 s
    engine = create_engine(target.store_url)
    ids = tuple(target.good_ids)
    with engine.connect() as conn:
        records = conn.execute(
            text(
                "SELECT count(DISTINCT request_id) FROM call_records WHERE request_id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": list(ids)},
        ).scalar_one()
        ledger = conn.execute(
            text(
                "SELECT count(DISTINCT request_id) FROM sluice_spend_ledger "
                "WHERE request_id IN :ids"
            ).bindparams(bindparam("ids", expanding=True)),
            {"ids": list(ids)},
        ).scalar_one()
    engine.dispose()
    assert records == len(ids)
    assert ledger == len(ids)

    async def metrics() -> int:
        async with target.http.get(target.url + "/metrics", headers=ADMIN) as resp:
            return len(await resp.read())

    size = target.run(metrics())
    assert size < 200_000, size
    print(
        f"fuzz: {sum(target.statuses.values())} cases, statuses {sorted(target.statuses.items())}, "
        f"{len(ids)} good calls all recorded, /metrics {size} bytes"
    )
