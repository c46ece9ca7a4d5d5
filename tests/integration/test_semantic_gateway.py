"""The semantic cache in a real gateway with the simulator, the real MiniLM embedder and the
official openai SDK over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from sluice import server
from sluice.cache.semantic.stage import SemanticCacheStage
from sluice.config import SluiceConfig
from sluice.gateway import Gateway
from sluice.governance.keys import KeyCreate
from sluice.observe.store import RecordStore
from tests.governance_rig import keyed_config, set_env
from tests.integration.semantic_support import (
    PARAPHRASE,
    QUESTION,
    real_embedder_or_skip,
    semantic_config,
    sim_requests,
)

pytestmark = pytest.mark.integration


@dataclass
class Running:
    oai: AsyncOpenAI
    sim_url: str
    stage: SemanticCacheStage
    gateway: Gateway


@pytest.fixture
async def running(sim_url: str) -> AsyncIterator[Running]:
    await real_embedder_or_skip()
    app = server.create_app(semantic_config(sim_url))
    gateway = app[server.GATEWAY]
    assert gateway.semantic is not None
    runner, port = await server.start_app(app)
    oai = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    yield Running(oai, sim_url, gateway.semantic, gateway)
    await oai.close()
    await runner.cleanup()


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a support bot."},
            {"role": "user", "content": text},
        ],
        "temperature": 0,
        "max_tokens": 40,
        **extra,
    }


async def test_a_paraphrase_is_served_from_the_semantic_cache(running: Running) -> None:
    first = await running.oai.chat.completions.with_raw_response.create(**ask(QUESTION))
    assert first.headers["x-sluice-cache"] == "miss"
    before = await sim_requests(running.sim_url)
    second = await running.oai.chat.completions.with_raw_response.create(**ask(PARAPHRASE))
    assert await sim_requests(running.sim_url) == before  # no upstream call
    assert second.headers["x-sluice-cache"] == "semantic"
    similarity = float(second.headers["x-sluice-cache-similarity"])
    assert 0.95 <= similarity <= 1.0
    assert int(second.headers["x-sluice-cache-age"]) >= 0
    a, b = first.parse(), second.parse()
    assert b.choices[0].message.content == a.choices[0].message.content
    snap = running.stage.snapshot()
    assert snap["hits"] == 1 and snap["stores"] == 1 and snap["entries"] == 1


async def test_the_identical_question_is_an_exact_hit_first(running: Running) -> None:
    await running.oai.chat.completions.create(**ask(QUESTION))
    again = await running.oai.chat.completions.with_raw_response.create(**ask(QUESTION))
    assert again.headers["x-sluice-cache"] == "exact"
    hit = await running.oai.chat.completions.with_raw_response.create(**ask(PARAPHRASE))
    assert hit.headers["x-sluice-cache"] == "semantic"
    # A semantic answer is not copied into the exact cache under the paraphrase's key.
    assert running.gateway.cache_backend is not None
    third = await running.oai.chat.completions.with_raw_response.create(**ask(PARAPHRASE))
    assert third.headers["x-sluice-cache"] == "semantic"


async def test_a_hit_is_replayed_as_a_stream(running: Running) -> None:
    first = await running.oai.chat.completions.create(**ask(QUESTION))
    raw = await running.oai.chat.completions.with_raw_response.create(
        **ask(PARAPHRASE, stream=True, stream_options={"include_usage": True})
    )
    assert raw.headers["x-sluice-cache"] == "semantic"
    text, finish, usage = "", None, None
    async for chunk in raw.parse():
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    assert text == first.choices[0].message.content
    assert finish == "stop" and usage is not None


async def test_a_look_alike_question_is_not_served(running: Running) -> None:
    await running.oai.chat.completions.create(**ask("Is 9 a prime number?"))
    raw = await running.oai.chat.completions.with_raw_response.create(**ask("Is 2 a prime number?"))
    assert raw.headers["x-sluice-cache"] == "miss"


async def test_opt_out_header_bypasses(running: Running) -> None:
    await running.oai.chat.completions.create(**ask(QUESTION))
    raw = await running.oai.chat.completions.with_raw_response.create(
        **ask(PARAPHRASE), extra_headers={"x-sluice-cache": "no-store"}
    )
    assert raw.headers["x-sluice-cache"] == "bypass"
    assert running.stage.snapshot()["hits"] == 0


async def test_a_semantic_hit_is_recorded_free_with_its_similarity(
    sim_url: str, tmp_path: Path
) -> None:
    await real_embedder_or_skip()
    db = f"sqlite:///{tmp_path / 'r.db'}"
    data = semantic_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    runner, port = await server.start(SluiceConfig.model_validate(data))
    oai = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    await oai.chat.completions.create(**ask(QUESTION))
    await oai.chat.completions.create(**ask(PARAPHRASE))
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as r,
    ):
        metrics = await r.text()
    await oai.close()
    await runner.cleanup()
    store = RecordStore.open(db)
    miss, hit = store.query()
    store.close()
    assert (miss.cache_status, hit.cache_status) == ("miss", "semantic")
    assert miss.cache_similarity is None
    assert hit.cache_similarity is not None and 0.95 <= hit.cache_similarity <= 1.0
    assert hit.cost_usd == 0 and hit.cost_saved_usd == miss.cost_usd
    assert hit.cache_decision is not None and hit.cache_decision.startswith("SERVE (semantic)")
    assert miss.cache_decision is None  # nothing stored yet: no candidate was refused
    assert 'sluice_cache_hits_total{kind="semantic"} 1.0' in metrics


async def test_a_typo_is_a_semantic_hit_without_the_verifier_and_recorded(
    sim_url: str, tmp_path: Path
) -> None:
    await real_embedder_or_skip()
    db = f"sqlite:///{tmp_path / 'r.db'}"
    data = semantic_config(sim_url).model_dump()
    data["observability"]["records"]["store_url"] = db
    runner, port = await server.start(SluiceConfig.model_validate(data))
    oai = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    await oai.chat.completions.create(**ask("When will my insurance claim be processed?"))
    typo = await oai.chat.completions.with_raw_response.create(
        **ask("when will my insurance caim be processed")
    )
    other = await oai.chat.completions.with_raw_response.create(
        **ask("When will my insurance claim be paid out in 30 days?")
    )
    await oai.close()
    await runner.cleanup()
    assert typo.headers["x-sluice-cache"] == "semantic"
    assert "x-sluice-cache-score" not in typo.headers  # no model was asked
    assert other.headers["x-sluice-cache"] == "miss"
    store = RecordStore.open(db)
    _, hit, miss = store.query()
    store.close()
    assert hit.cache_status == "semantic" and hit.cache_score is None
    assert hit.cache_decision is not None and "near-verbatim (typo)" in hit.cache_decision
    assert miss.cache_status == "miss"
    assert miss.cache_decision is not None and miss.cache_decision.startswith("MISS")
    assert "30" not in miss.cache_decision.split(":", 1)[1]  # no words of the question


async def test_never_across_tenants_through_the_gateway(
    sim_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identical and paraphrased questions from another tenant go upstream, every time.
    Each tenant calls with its own virtual key (auth on, a real key store)."""
    await real_embedder_or_skip()
    set_env(monkeypatch)
    data = keyed_config(sim_url, f"sqlite:///{tmp_path / 'keys.db'}").model_dump()
    data["cache"]["semantic"] = semantic_config(sim_url).cache.semantic.model_dump()
    app = server.create_app(SluiceConfig.model_validate(data))
    gateway = app[server.GATEWAY]
    runner, port = await server.start_app(app)
    store = gateway.governance.store
    assert store is not None
    tenants = ("acme", "globex", "initech", "umbrella")
    keys = {t: store.create(KeyCreate(tenant=t))[1] for t in tenants}
    oai = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)

    async def status(text: str, tenant: str) -> str:
        raw = await oai.chat.completions.with_raw_response.create(
            **ask(text), extra_headers={"authorization": f"Bearer {keys[tenant]}"}
        )
        return str(raw.headers["x-sluice-cache"])

    try:
        assert await status(QUESTION, "acme") == "miss"
        before = await sim_requests(sim_url)
        for tenant in ("globex", "initech"):
            assert await status(PARAPHRASE, tenant) == "miss"
        assert await sim_requests(sim_url) == before + 2
        # globex stored its own answer to PARAPHRASE; acme's identical question is exact
        # for acme only, and initech's identical question still goes upstream.
        assert await status(QUESTION, "acme") == "exact"
        assert await status(QUESTION, "umbrella") == "miss"
        assert await status(PARAPHRASE, "acme") == "semantic"
        assert gateway.semantic is not None
        assert gateway.semantic.snapshot()["hits"] == 1
    finally:
        await oai.close()
        await runner.cleanup()


async def test_anthropic_sdk_gets_a_semantic_hit_as_a_stream(running: Running) -> None:
    base = str(running.oai.base_url).removesuffix("/").removesuffix("/v1")
    ant = AsyncAnthropic(base_url=base, api_key="sk-test", max_retries=0)
    body: Any = {
        "model": "claude-haiku",
        "max_tokens": 40,
        "system": "You are a support bot.",
        "extra_body": {"temperature": 0},
    }
    first = await ant.messages.create(**body, messages=[{"role": "user", "content": QUESTION}])
    async with ant.messages.stream(
        **body, messages=[{"role": "user", "content": PARAPHRASE}]
    ) as stream:
        text = await stream.get_final_text()
        headers = stream.response.headers
    assert headers["x-sluice-cache"] == "semantic"
    assert text == "".join(b.text for b in first.content if b.type == "text")
    await ant.close()


async def test_the_judge_can_refuse_a_hit(sim_url: str, tmp_path: Path) -> None:
    """`verify` asks a model through the gateway's own executor; the simulator never says
    "yes", so the candidate is refused and the call goes upstream. The judge's call is
    charged to the call it judged."""
    await real_embedder_or_skip()
    data = semantic_config(sim_url, verify={"enabled": True}).model_dump()
    db = f"sqlite:///{tmp_path / 'records.db'}"
    data["observability"]["records"]["store_url"] = db
    runner, port = await server.start(SluiceConfig.model_validate(data))
    oai = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test", max_retries=0)
    try:
        await oai.chat.completions.create(**ask(QUESTION))
        before = await sim_requests(sim_url)
        raw = await oai.chat.completions.with_raw_response.create(**ask(PARAPHRASE))
        assert raw.headers["x-sluice-cache"] == "miss"
        assert await sim_requests(sim_url) == before + 2  # the judge's call and the answer
        answer = raw.parse().usage
        assert answer is not None
    finally:
        await oai.close()
        await runner.cleanup()  # flushes the records
    store = RecordStore.open(db)
    try:
        judged = next(
            r for r in store.query() if r.request_id == raw.headers["x-sluice-request-id"]
        )
    finally:
        store.close()
    # The record holds the answer's tokens plus the judge's: the check was not free.
    assert judged.input_tokens > answer.prompt_tokens
    assert judged.output_tokens > answer.completion_tokens


async def test_a_trivially_varied_question_is_a_normalized_hit(running: Running) -> None:
    first = await running.oai.chat.completions.create(**ask(QUESTION))
    before = await sim_requests(running.sim_url)
    raw = await running.oai.chat.completions.with_raw_response.create(
        **ask("hi, HOW do I cancel my subscription??  thanks!")
    )
    assert raw.headers["x-sluice-cache"] == "normalized"
    assert await sim_requests(running.sim_url) == before
    assert raw.parse().choices[0].message.content == first.choices[0].message.content
    stats = running.stage.stats_json()
    assert stats["hits_normalized"] == 1 and stats["hits_semantic"] == 0
    # A look-alike that only a number tells apart is never merged by the normalized tier.
    await running.oai.chat.completions.create(**ask("Can I get a refund within 14 days?"))
    other = await running.oai.chat.completions.with_raw_response.create(
        **ask("can I get a refund within 30 days")
    )
    assert other.headers["x-sluice-cache"] == "miss"
