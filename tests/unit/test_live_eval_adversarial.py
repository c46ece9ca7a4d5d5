"""Adversarial checks of live evaluation (shadow traffic, online judging) in-process: what a
second tenant reusing a request id can do to stored pairs and scores, and what a shutdown
with mirrors still queued or in flight loses (counted, never hanging)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, generate_latest

from sluice.eval.config import OnlineEvalConfig, ShadowConfig
from sluice.eval.live import LiveEval, LiveEvalStage
from sluice.eval.live_metrics import LiveMetrics
from sluice.eval.live_store import LiveStore
from sluice.pipeline.context import CallContext, Result
from sluice.types import CallMeta, ChatRequest, ChatResponse, Message, TextPart, Usage


def _pair(request_id: str, tenant: str, production: str) -> dict[str, Any]:
    return {
        "request_id": request_id, "route": "support", "tenant": tenant,
        "production_model": "m", "candidate": "cand", "candidate_request_id": "shd_1",
        "ts": time.time(), "question": "q", "production": production,
        "candidate_output": "c", "production_ms": 1.0, "candidate_ms": 2.0, "error": None,
    }  # fmt: skip


def _score(request_id: str, tenant: str, verdict: int) -> dict[str, Any]:
    return {
        "request_id": request_id, "route": "support", "model": "m", "ts": time.time(),
        "score": (verdict - 1) / 4, "verdict": verdict, "reason": "r",
        "judge_request_id": "jdg_1", "tenant": tenant,
    }  # fmt: skip


def test_another_tenant_reusing_a_request_id_cannot_replace_stored_pairs_or_scores(
    tmp_path: Path,
) -> None:
    """Callers may send their own `x-sluice-request-id`, so two tenants can share one. The
    second tenant's mirror and judgement of "its" call must not overwrite the first
    tenant's stored pair and score; the same tenant's retry still replaces its own."""
    store = LiveStore.open(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        store.put_pair(_pair("order-1", "acme", "acme's answer"))
        store.put_score(_score("order-1", "acme", 5))
        store.put_pair(_pair("order-1", "evil", "evil's answer"))
        store.put_score(_score("order-1", "evil", 1))
        (pair,) = store.pairs_since(0)
        assert pair.production == "acme's answer"
        (quality,) = store.quality(0)
        assert quality["judged"] == 1 and quality["mean_score"] == 1.0
        store.put_pair(_pair("order-1", "acme", "acme's retry"))  # its own: replaced
        store.put_score(_score("order-1", "acme", 3))
        (pair,) = store.pairs_since(0)
        assert pair.production == "acme's retry"
        (quality,) = store.quality(0)
        assert quality["mean_score"] == 0.5
    finally:
        store.close()


async def _hang(ctx: CallContext) -> Result:
    await asyncio.Event().wait()
    raise AssertionError


async def _answer(ctx: CallContext) -> Result:
    ctx.usage = Usage(5, 5)
    return ChatResponse("r", ctx.request.model, [TextPart("an answer")])


async def test_shutdown_with_mirrors_queued_and_in_flight_counts_them_lost() -> None:
    """A candidate that never answers, mirrors queued behind it: closing the live evaluation
    returns (no hang), finishes the in-flight mirror's record, and counts every mirror and
    judgement it abandons as `lost`, in the stats and in `/metrics`."""
    finished: list[dict[str, Any]] = []

    def finish(ctx: CallContext, **kw: Any) -> None:
        finished.append(kw)

    registry = CollectorRegistry()
    live = LiveEval(
        {"support": ShadowConfig(candidate="cand", sample=1.0, queue=8, concurrency=1)},
        {"support": OnlineEvalConfig(judge_model="judge", sample=1.0, queue=8, concurrency=1)},
        _hang,
        finish,
        LiveMetrics(registry, ["support"], ["support"]),
    )
    stage = LiveEvalStage(live)
    for i in range(3):
        msgs = [Message("user", [TextPart(f"question {i}")])]
        ctx = CallContext(ChatRequest("support", msgs, meta=CallMeta(request_id=f"req_{i}")))
        await stage(ctx, _answer)
    await asyncio.sleep(0.05)  # the workers pick up the first job of each lane
    await asyncio.wait_for(live.close(), 10)  # a guard against a hang, not a speed check
    assert live.stats.shadow["support"] == {"lost": 3}
    assert live.stats.online["support"] == {"lost": 3}
    assert [f["status"] for f in finished] == [499, 499]  # the two in flight: recorded
    text = generate_latest(registry).decode()
    assert 'sluice_shadow_calls_total{outcome="lost",route="support"} 3.0' in text
    assert 'sluice_online_eval_total{outcome="lost",route="support"} 3.0' in text


def test_dataset_ids_that_storage_cannot_hold_are_refused_at_load(tmp_path: Path) -> None:
    """An item id is a primary-key column of 255 characters without NUL: a longer one, or one
    with NUL, is a clear dataset error when the file is read, not a database error after
    the whole run was paid for."""
    import pytest

    from sluice.eval.dataset import DatasetError, load_dataset

    path = tmp_path / "d.jsonl"
    for bad in ("x" * 256, "a\x00b"):
        path.write_bytes(orjson.dumps({"id": bad, "input": "q", "expected": "a"}) + b"\n")
        with pytest.raises(DatasetError, match="id"):
            load_dataset(path)
    path.write_bytes(orjson.dumps({"id": "é" * 255, "input": "q", "expected": "a"}) + b"\n")
    assert load_dataset(path)[0].id == "é" * 255


def test_saved_results_with_nul_in_outputs_and_errors_are_stored(tmp_path: Path) -> None:
    """A model's output (or an error text) may hold NUL; `sluice eval run --store` must
    still save the run (PostgreSQL text holds no NUL; SQLite here, PostgreSQL in the
    integration test of the same name)."""
    from sluice.eval.result_store import EvalResultStore

    _save_nul_run(EvalResultStore.open(f"sqlite:///{tmp_path / 'r.db'}"))


def _save_nul_run(saved: Any) -> None:
    from sluice.eval.runner import ItemResult

    try:
        saved.save(
            "run1",
            "d\x00.jsonl",
            [
                ItemResult("i1", "gpt-4o", "out\x00put", {}, 1.0, True, "r1", 1.0),
                ItemResult("i2", "gpt-4o", None, {}, 0.0, False, "r2", 1.0, error="e\x00rr"),
            ],
        )
        loaded = saved.load("run1")
    finally:
        saved.close()
    assert loaded is not None
    assert [(r.output, r.error) for r in loaded[1]] == [("output", None), (None, "err")]


async def test_an_answer_completed_after_shutdown_starts_no_new_workers() -> None:
    """A stream cut loose by a drain timeout may end after the live evaluation was closed:
    its mirror and judgement are counted `lost`, and no worker is started again (it would
    call through a closed gateway and never be stopped)."""
    calls: list[str] = []

    async def record(ctx: CallContext) -> Result:
        calls.append(ctx.request.meta.request_id)
        return await _answer(ctx)

    live = LiveEval(
        {"support": ShadowConfig(candidate="cand", sample=1.0)},
        {"support": OnlineEvalConfig(judge_model="judge", sample=1.0)},
        record,
        lambda *a, **kw: None,
        LiveMetrics(CollectorRegistry(), ["support"], ["support"]),
    )
    stage = LiveEvalStage(live)
    await live.start()
    await live.close()
    msgs = [Message("user", [TextPart("late")])]
    await stage(CallContext(ChatRequest("support", msgs, meta=CallMeta(request_id="r"))), _answer)
    await asyncio.sleep(0.05)
    assert calls == []
    assert all(not lane._tasks for lane in live._lanes.values())
    assert live.stats.shadow["support"] == {"lost": 1}
    assert live.stats.online["support"] == {"lost": 1}


def test_a_dataset_cannot_run_code_unless_its_python_scorers_are_allowed(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """A shared dataset file naming `{"type": "python", "callable": "builtins:eval"}` would
    have the model's answer evaluated as Python, and naming any module imports it. Without
    `--allow-python-scorers` the file is refused before anything is imported."""
    import sys

    import pytest

    from sluice.eval.dataset import DatasetError, load_dataset

    (tmp_path / "side_effect_mod.py").write_text(
        "import builtins\nbuiltins.SIDE_EFFECT_RAN = True\ndef f(a, e):\n    return 1.0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "d.jsonl"
    for callable_ in ("builtins:eval", "side_effect_mod:f"):
        item = {"input": "q", "scorers": [{"type": "python", "callable": callable_}]}
        path.write_bytes(orjson.dumps(item) + b"\n")
        with pytest.raises(DatasetError, match="--allow-python-scorers"):
            load_dataset(path)
    assert "side_effect_mod" not in sys.modules
    assert load_dataset(path, allow_python=True)[0].scorers[0].callable == "side_effect_mod:f"
    monkeypatch.delitem(sys.modules, "side_effect_mod")
    import builtins

    monkeypatch.delattr(builtins, "SIDE_EFFECT_RAN")


async def test_a_caller_choosing_its_request_ids_cannot_choose_to_be_sampled() -> None:
    """`x-sluice-request-id` is the caller's to choose and the sampler hashes it: with a
    public salt a caller could pick ids that are always mirrored (the shadow line pays) or
    never judged (its answers escape online evaluation). With the gateway's secret salt,
    400 ids picked to pass the public hash at share 0.1 are sampled at about 0.1."""
    from sluice.eval.live import sampled

    picked: list[str] = []
    n = 0
    while len(picked) < 400:
        n += 1
        if sampled(f"pick-{n}", 0.1, "shadow") and sampled(f"pick-{n}", 0.1, "online"):
            picked.append(f"pick-{n}")
    live = LiveEval(
        {"support": ShadowConfig(candidate="cand", sample=0.1, queue=1000)},
        {"support": OnlineEvalConfig(judge_model="judge", sample=0.1, queue=1000)},
        _hang,
        lambda *a, **kw: None,
        LiveMetrics(CollectorRegistry(), ["support"], ["support"]),
    )
    stage = LiveEvalStage(live)
    for request_id in picked:
        msgs = [Message("user", [TextPart("q")])]
        ctx = CallContext(ChatRequest("support", msgs, meta=CallMeta(request_id=request_id)))
        await stage(ctx, _answer)
    await asyncio.sleep(0)
    mirrored = sum(lane.waiting for (kind, _), lane in live._lanes.items() if kind == "shadow")
    judged = sum(lane.waiting for (kind, _), lane in live._lanes.items() if kind == "online")
    await live.close()
    # Expected 40 each (+ at most one running per lane); 120 is over 12 standard deviations.
    assert mirrored < 120 and judged < 120
