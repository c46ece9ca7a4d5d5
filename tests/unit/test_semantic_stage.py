"""SemanticCacheStage with a fake embedder, a fake guard and a counting upstream."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sluice.cache.semantic.config import SemanticCacheConfig
from sluice.cache.semantic.stage import SemanticCacheStage
from sluice.cache.semantic.store import SqlStore
from sluice.collect import StreamCollector
from sluice.identity import Identity
from sluice.pipeline.context import CallContext
from sluice.types import (
    CallMeta,
    ChatRequest,
    ChatResponse,
    Message,
    TextPart,
    Tool,
    ToolResultPart,
)
from tests.unit.semantic_fakes import Clock, FakeEmbedder, Upstream, drain

Q = "What is the capital of France?"
PARA = "Tell me the capital city of France"


def digits_guard(a: str, b: str) -> str | None:
    """Stands in for the contrast guard: refuses when the numbers differ."""
    return "numbers differ" if re.findall(r"\d+", a) != re.findall(r"\d+", b) else None


def request(
    text: str = Q,
    *,
    system: str = "You are helpful.",
    before: list[Message] | None = None,
    tools: list[Tool] | None = None,
    temperature: float | None = 0,
    stream: bool = False,
    model: str = "gpt-4o-mini",
    headers: dict[str, str] | None = None,
) -> ChatRequest:
    return ChatRequest(
        model=model,
        system=[TextPart(system)],
        messages=[*(before or []), Message("user", [TextPart(text)])],
        tools=tools or [],
        temperature=temperature,
        stream=stream,
        meta=CallMeta(request_id="r", headers=headers or {}),
    )


class Harness:
    def __init__(self, store: Any = None, **config: Any) -> None:
        self.embedder = FakeEmbedder()
        self.embedder.alias(PARA, Q, 0.97)
        self.clock = Clock()
        self.upstream = Upstream()
        self.stage = SemanticCacheStage(
            SemanticCacheConfig(**{"enabled": True, **config}),
            lambda: self.embedder,
            store,
            guard=digits_guard,
            clock=self.clock,
        )

    async def ask(self, req: ChatRequest, tenant: str = "acme") -> tuple[CallContext, Any]:
        ctx = CallContext(req, identity=Identity(key_id="k-" + tenant, tenant=tenant))
        result = await self.stage(ctx, self.upstream)
        return ctx, result


async def test_paraphrase_is_a_hit_with_similarity_and_age() -> None:
    h = Harness()
    ctx, first = await h.ask(request(Q))
    assert ctx.response_headers["x-sluice-cache"] == "miss"
    h.clock.now += 7
    ctx, second = await h.ask(request(PARA))
    assert h.upstream.calls == 1
    assert isinstance(second, ChatResponse) and second.parts == first.parts
    assert ctx.response_headers["x-sluice-cache"] == "semantic"
    assert ctx.response_headers["x-sluice-cache-similarity"] == "0.970"
    assert ctx.response_headers["x-sluice-cache-age"] == "7"
    assert ctx.cache_status == "semantic"
    assert ctx.cache_similarity == pytest.approx(0.97, abs=1e-3)
    assert h.stage.snapshot()["hits"] == 1 and h.stage.snapshot()["stores"] == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"system": "You are terse."},
        {"before": [Message("user", [TextPart("hi")]), Message("assistant", [TextPart("yo")])]},
        {"tools": [Tool("lookup", "finds things", {"type": "object"})]},
        {"model": "gpt-4o"},
    ],
    ids=["system prompt", "earlier turns", "tools", "model"],
)
async def test_a_different_scope_is_a_miss(changed: dict[str, Any]) -> None:
    h = Harness()
    await h.ask(request(Q))
    ctx, _ = await h.ask(request(Q, **changed))
    assert ctx.response_headers["x-sluice-cache"] == "miss"
    assert h.upstream.calls == 2


async def test_same_earlier_turns_share_answers() -> None:
    before = [Message("user", [TextPart("hi")]), Message("assistant", [TextPart("hello")])]
    h = Harness()
    await h.ask(request(Q, before=before))
    ctx, _ = await h.ask(request(PARA, before=before))
    assert ctx.cache_status == "semantic"


async def test_below_the_threshold_is_a_miss_and_routes_override_it() -> None:
    h = Harness(threshold=0.98, routes={"gpt-4o": {"threshold": 0.96}})
    await h.ask(request(Q))
    ctx, _ = await h.ask(request(PARA))
    assert ctx.cache_status == "miss"  # 0.97 < 0.98
    await h.ask(request(Q, model="gpt-4o"))
    ctx, _ = await h.ask(request(PARA, model="gpt-4o"))
    assert ctx.cache_status == "semantic"  # 0.97 >= 0.96 on this route


async def test_a_route_can_turn_it_off_and_models_limit_it() -> None:
    h = Harness(routes={"gpt-4o": {"enabled": False}}, models=["gpt-4o", "gpt-4o-mini"])
    await h.ask(request(Q, model="gpt-4o"))
    ctx, _ = await h.ask(request(Q, model="gpt-4o"))
    assert ctx.cache_status is None and h.upstream.calls == 2
    await h.ask(request(Q, model="claude-haiku"))
    ctx, _ = await h.ask(request(Q, model="claude-haiku"))
    assert ctx.cache_status is None and h.upstream.calls == 4
    assert h.embedder.calls == 0  # nothing embedded, not even the warm-up


async def test_entries_expire_after_their_ttl() -> None:
    h = Harness(ttl_s=60, routes={"gpt-4o": {"ttl_s": 600}})
    await h.ask(request(Q))
    await h.ask(request(Q, model="gpt-4o"))
    h.clock.now += 61
    ctx, _ = await h.ask(request(PARA))
    assert ctx.cache_status == "miss"
    ctx, _ = await h.ask(request(PARA, model="gpt-4o"))
    assert ctx.cache_status == "semantic"


async def test_the_guard_refuses_a_look_alike() -> None:
    h = Harness()
    h.embedder.alias("Is 2 a prime number?", "Is 9 a prime number?", 0.99)
    await h.ask(request("Is 9 a prime number?"))
    ctx, result = await h.ask(request("Is 2 a prime number?"))
    assert ctx.cache_status == "miss" and h.upstream.calls == 2
    assert result.parts == [TextPart("answer 2")]
    assert h.stage.stats.refused == 1


async def test_with_the_guard_off_the_look_alike_is_served() -> None:
    h = Harness(guard=False)
    h.embedder.alias("Is 2 a prime number?", "Is 9 a prime number?", 0.99)
    await h.ask(request("Is 9 a prime number?"))
    ctx, _ = await h.ask(request("Is 2 a prime number?"))
    assert ctx.cache_status == "semantic"


@pytest.mark.parametrize(
    ("verdict", "expected"), [(True, "semantic"), (False, "miss"), (None, "miss")]
)
async def test_the_judge_decides_and_a_failing_judge_refuses(
    verdict: bool | None, expected: str
) -> None:
    asked: list[tuple[str, str]] = []

    async def judge(a: str, b: str) -> bool:
        asked.append((a, b))
        if verdict is None:
            raise RuntimeError("judge down")
        return verdict

    h = Harness(verify={"enabled": True})
    h.stage._judge = judge
    await h.ask(request(Q))
    ctx, _ = await h.ask(request(PARA))
    assert ctx.cache_status == expected
    assert asked == [(PARA, Q)]
    assert h.stage.stats.refused == (expected == "miss")


@pytest.mark.parametrize("text", [Q, PARA])
async def test_never_across_tenants(text: str) -> None:
    """Identical and paraphrased questions of another tenant never hit, in either order."""
    h = Harness()
    await h.ask(request(Q), tenant="acme")
    for tenant in ("globex", "acme2", "Acme", "default"):
        ctx, result = await h.ask(request(text), tenant=tenant)
        assert ctx.cache_status == "miss", tenant
        assert result.parts != [TextPart("answer 1")]
    assert h.stage.stats.hits == 0
    ctx, _ = await h.ask(request(text), tenant="acme")
    assert ctx.cache_status == ("normalized" if text == Q else "semantic")  # the owner hits


async def test_a_streamed_miss_is_stored_when_whole_and_a_hit_replays_as_a_stream() -> None:
    h = Harness()
    ctx, stream = await h.ask(request(Q, stream=True))
    assert h.stage.snapshot()["entries"] == 0  # nothing stored before the stream ends
    await drain(stream)
    assert h.stage.snapshot()["entries"] == 1
    ctx, replay = await h.ask(request(PARA, stream=True))
    assert ctx.cache_status == "semantic"
    collector = StreamCollector()
    for event in await drain(replay):
        collector.add(event)
    assert collector.finished
    assert collector.response().parts == [TextPart("answer 1")]


async def test_a_cut_stream_is_not_stored() -> None:
    h = Harness()
    h.upstream.cut_stream = True
    _, stream = await h.ask(request(Q, stream=True))
    with pytest.raises(ConnectionResetError):
        await drain(stream)
    assert h.stage.snapshot()["entries"] == 0


async def test_opt_outs() -> None:
    h = Harness()
    ctx, _ = await h.ask(request(Q, headers={"x-sluice-cache": "no-store"}))
    assert ctx.cache_status == "bypass" and h.stage.snapshot()["entries"] == 0
    ctx, _ = await h.ask(request(Q, temperature=None))  # provider default is not 0
    assert ctx.cache_status == "bypass"
    await h.ask(request(Q))
    ctx, result = await h.ask(request(PARA, headers={"x-sluice-cache": "refresh"}))
    assert ctx.cache_status == "miss"  # not read ...
    ctx, hit = await h.ask(request(PARA))
    assert hit.parts == result.parts  # ... but written: the fresh answer is served now
    assert h.stage.snapshot()["entries"] == 2


async def test_tool_results_and_non_text_last_turns_bypass() -> None:
    h = Harness()
    msgs = [Message("tool", [ToolResultPart("c1", [TextPart("42")])])]
    req = ChatRequest(model="gpt-4o-mini", messages=msgs, temperature=0)
    ctx = CallContext(req)
    await h.stage(ctx, h.upstream)
    assert ctx.cache_status == "bypass"


async def test_embedding_failure_or_timeout_is_a_counted_miss() -> None:
    h = Harness(embed_timeout_s=0.05)
    await h.ask(request(Q))
    h.embedder.fail = True
    ctx, result = await h.ask(request(PARA))
    assert ctx.cache_status == "miss" and isinstance(result, ChatResponse)
    h.embedder.fail, h.embedder.delay_s = False, 0.5
    ctx, _ = await h.ask(request(PARA))
    assert ctx.cache_status == "miss"
    stats = h.stage.snapshot()
    assert stats["embed_errors"] == 2 and stats["errors"] == 2
    assert stats["entries"] == 1  # the failed ones stored nothing


async def test_an_embedder_that_cannot_load_turns_the_stage_into_a_pass_through() -> None:
    def broken() -> FakeEmbedder:
        raise RuntimeError("no model files")

    stage = SemanticCacheStage(SemanticCacheConfig(enabled=True), broken)
    upstream = Upstream()
    ctx = CallContext(request(Q))
    await stage(ctx, upstream)
    assert upstream.calls == 1 and stage.stats.errors == 1
    assert ctx.cache_status == "miss"  # asked upstream; nothing to compare with


async def test_purge_by_id_route_tenant_and_all() -> None:
    h = Harness()
    for tenant in ("a", "b"):
        for model in ("gpt-4o", "gpt-4o-mini"):
            await h.ask(request(Q, model=model), tenant=tenant)
    assert h.stage.snapshot()["entries"] == 4
    assert await h.stage.purge(tenant="a", route="gpt-4o") == 1
    assert await h.stage.purge(route="gpt-4o-mini") == 2
    assert h.stage.catalog is not None
    (only,) = h.stage.catalog.select()
    assert await h.stage.purge(entry_id=only, tenant="a") == 0  # it is b's
    assert await h.stage.purge(entry_id=only) == 1
    await h.ask(request(Q))
    assert await h.stage.purge() == 1
    snap = h.stage.snapshot()
    assert snap["entries"] == 0 and snap["bytes"] == 0


async def test_entries_and_bytes_are_counted_and_bounded() -> None:
    h = Harness(max_entries=3)
    for i in range(5):
        await h.ask(request(f"question number {i}"))
    snap = h.stage.snapshot()
    assert snap["entries"] == 3 and snap["stores"] == 5 and snap["bytes"] > 0


async def test_sqlite_persistence_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "semantic.db")
    h = Harness(SqlStore(f"sqlite:///{path}", "semantic_cache"), persist_path=path)
    await h.ask(request(Q))
    await h.stage.close()
    again = Harness(SqlStore(f"sqlite:///{path}", "semantic_cache"), persist_path=path)
    again.embedder = h.embedder
    ctx, result = await again.ask(request(PARA))
    assert ctx.cache_status == "semantic" and result.parts == [TextPart("answer 1")]
    assert again.upstream.calls == 0
    assert await again.stage.purge() == 1
    await again.stage.close()
