"""Simulator bookkeeping: config, rate-limit windows, prompt-cache LRU, faults, CLI."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from sluice.sim import SimConfig, SimModel, build_config, create_app, default_config
from sluice.sim.server import STATE
from sluice.sim.state import (
    LimitInfo,
    PromptCache,
    RateLimiter,
    SimState,
    anthropic_limit_headers,
    go_duration,
    openai_limit_headers,
)


def test_default_config() -> None:
    config = default_config()
    assert set(config.models) == {
        "gpt-4o-mini",
        "gpt-4o",
        "claude-3-5-haiku-latest",
        "claude-sonnet-4-5",
    }
    assert all(m.ttft_ms == 0 and m.tokens_per_s == 0 for m in config.models.values())
    assert config.models["gpt-4o"].name == "gpt-4o"
    assert config.port == 8089 and config.fault_rate == 0


def test_config_names_models_and_splits_faults() -> None:
    config = SimConfig.model_validate({"models": {"x": {"output_tokens": 3}}, "faults": "429, cut"})
    assert config.models["x"].name == "x" and config.faults == ["429", "cut"]
    with pytest.raises(ValueError):
        SimConfig.model_validate({"faults": ["teapot"]})
    tuned = config.with_latency(ttft_ms=5, tokens_per_s=50).with_limits(rpm_limit=2)
    assert tuned.models["x"].ttft_ms == 5 and tuned.default_model.tokens_per_s == 50
    assert tuned.models["x"].rpm_limit == 2 and tuned.models["x"].output_tokens == 3
    assert config.with_latency() is config and config.with_limits() is config


def test_unknown_models_use_the_template() -> None:
    state = SimState(SimConfig(default_model=SimModel(output_tokens=7)))
    model = state.model("anything")
    assert model.name == "anything" and model.output_tokens == 7
    assert state.model("anything") is model
    assert state.model("gpt-4o").output_tokens == 24


def test_app_keeps_state_per_app() -> None:
    one, two = create_app(), create_app()
    assert one[STATE] is not two[STATE]


def test_rate_limiter_fixed_window() -> None:
    limiter = RateLimiter()
    model = SimModel(name="m", rpm_limit=2, tpm_limit=100)
    first = limiter.check(model, 10, 0.0)
    assert (first.remaining_requests, first.remaining_tokens, first.exceeded) == (1, 90, None)
    assert limiter.check(model, 10, 1.0).remaining_requests == 0
    third = limiter.check(model, 10, 15.0)
    assert third.exceeded == "requests" and third.retry_after_s == 45
    assert limiter.check(model, 10, 60.0).exceeded is None  # a new window
    tokens = RateLimiter().check(SimModel(name="t", tpm_limit=5), 6, 0.0)
    assert tokens.exceeded == "tokens"


def test_limit_headers() -> None:
    info = LimitInfo(60, 59, 1000, 900, 12.5)
    openai = openai_limit_headers(info)
    assert openai == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "12.5s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "900",
        "x-ratelimit-reset-tokens": "12.5s",
    }
    anthropic = anthropic_limit_headers(info)
    assert anthropic["anthropic-ratelimit-requests-remaining"] == "59"
    assert anthropic["anthropic-ratelimit-tokens-limit"] == "1000"
    reset = anthropic["anthropic-ratelimit-requests-reset"]
    assert len(reset) == 20 and reset[10] == "T" and reset.endswith("Z")
    assert openai_limit_headers(LimitInfo(0, 0, 5, 5, 1.0)).keys() == {
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.12, "120ms"), (1, "1s"), (59.25, "59.25s"), (360, "6m0s"), (61.5, "1m1.5s")],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_prompt_cache_ttl_and_lru() -> None:
    cache = PromptCache(max_entries=2)
    cache.store(b"a", 10.0, 0.0)
    assert cache.lookup(b"a", 5.0)
    assert cache.lookup(b"a", 14.0)  # the hit at 5 s refreshed the TTL
    assert not cache.lookup(b"a", 100.0) and len(cache) == 0
    cache.store(b"a", 10.0, 0.0)
    cache.store(b"b", 10.0, 0.0)
    cache.lookup(b"a", 1.0)
    cache.store(b"c", 10.0, 1.0)  # evicts b, the least recently used
    assert cache.lookup(b"a", 2.0) and not cache.lookup(b"b", 2.0) and cache.lookup(b"c", 2.0)


def test_fault_picking() -> None:
    state = SimState(SimConfig(fault_rate=0.5, faults=["500", "hang"], seed=3))
    assert state.pick_fault("cut, 429") == "cut"
    assert state.pick_fault("teapot") is None
    draws = [state.pick_fault(None) for _ in range(200)]
    assert set(draws) == {None, "500", "hang"}
    state.reset()
    assert [state.pick_fault(None) for _ in range(200)] == draws
    assert SimState(SimConfig()).pick_fault(None) is None


def test_invalid_json_counter_and_reset() -> None:
    state = SimState(SimConfig())
    assert [state.invalid_json_due("k", 2) for _ in range(4)] == [True, True, False, False]
    assert state.invalid_json_due("other", 1)
    state.stats.open_streams = 2
    state.stats.requests_total = 5
    state.reset()
    assert state.stats.requests_total == 0 and state.stats.open_streams == 2
    assert state.invalid_json_due("k", 2)


def test_stats_json_shape() -> None:
    state = SimState(SimConfig())
    entry = state.stats.model("m")
    entry.requests += 1
    state.note_fault("429")
    assert state.stats.to_json() == {
        "requests_total": 0,
        "by_model": {
            "m": {
                "requests": 1,
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
            }
        },
        "open_streams": 0,
        "in_flight": 0,
        "last_traceparent": None,
        "last_prompt_text": None,
        "requests_cancelled": 0,
        "streams_cancelled": 0,
        "faults_injected": {"429": 1},
    }


def test_build_config_from_flags_and_file(tmp_path: Path) -> None:
    config = build_config(port=0, fault_rate=0.3, faults="429,500,hang", seed=9, ttft_ms=50, tps=20)
    assert config.port == 0 and config.fault_rate == 0.3 and config.seed == 9
    assert config.faults == ["429", "500", "hang"]
    assert all(m.ttft_ms == 50 and m.tokens_per_s == 20 for m in config.models.values())
    file = tmp_path / "sim.yaml"
    file.write_text("models:\n  only:\n    output_tokens: 5\nhang_s: 1\n", encoding="utf-8")
    loaded = build_config(config_path=str(file), rpm_limit=10)
    assert list(loaded.models) == ["only"] and loaded.models["only"].rpm_limit == 10
    assert loaded.hang_s == 1
    with pytest.raises(click.UsageError):
        build_config(faults="nope")
    with pytest.raises(click.UsageError):
        build_config(fault_rate=2.0)
