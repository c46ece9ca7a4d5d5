"""The live-eval sampler: deterministic by request id, and its rate within 2% of the share."""

from __future__ import annotations

import secrets

import pytest

from sluice.eval.config import OnlineEvalConfig
from sluice.eval.live import sampled
from sluice.eval.live_metrics import QualityDrop


@pytest.mark.parametrize("share", [0.01, 0.05, 0.1, 0.25, 0.5, 0.9])
def test_sampled_rate_is_within_two_points_of_the_share(share: float) -> None:
    ids = [f"req_{secrets.token_hex(12)}" for _ in range(20_000)]
    rate = sum(sampled(i, share, "online") for i in ids) / len(ids)
    assert abs(rate - share) <= 0.02


def test_sampled_is_deterministic_and_salted() -> None:
    ids = [f"req_{i}" for i in range(2_000)]
    first = [sampled(i, 0.3, "shadow") for i in ids]
    assert first == [sampled(i, 0.3, "shadow") for i in ids]
    other = [sampled(i, 0.3, "online") for i in ids]
    assert first != other  # independent samples for shadow and online
    assert not any(sampled(i, 0.0, "x") for i in ids)
    assert all(sampled(i, 1.0, "x") for i in ids)


def test_quality_drop_fires_only_with_enough_scores_under_the_threshold() -> None:
    cfg = OnlineEvalConfig(judge_model="j", alert_below=0.5, min_scores=3, window_s=600)
    rule = QualityDrop({"support": cfg, "other": OnlineEvalConfig(judge_model="j")})
    assert rule.enabled
    now = 1_000_000.0
    rule.add("support", 0.0, now)
    rule.add("support", 0.25, now)
    reading = rule.check(now, [])[(("route", "support"),)]
    assert not reading.firing  # 2 scores < min_scores
    rule.add("support", 1.0, now)
    reading = rule.check(now, [])[(("route", "support"),)]
    assert reading.firing and reading.value == pytest.approx(1.25 / 3)
    assert not rule.check(now + 2_000, [])[(("route", "support"),)].firing  # window slid
    rule.add("unknown-route", 0.0, now)  # not configured: ignored
    assert set(rule.check(now, [])) == {(("route", "support"),)}


def test_unknown_candidate_or_judge_is_a_config_error() -> None:
    from sluice.config import SluiceConfig, default_config

    data = default_config({"SLUICE_SIM_URL": "http://127.0.0.1:1"}).model_dump()
    route = {"targets": ["gpt-4o-mini"], "default": "gpt-4o-mini"}
    for extra, message in (
        ({"shadow": {"candidate": "nope"}}, "shadow: candidate 'nope'"),
        ({"online_eval": {"judge_model": "nope"}}, "online_eval: judge_model 'nope'"),
        ({"shadow": {"candidate": "gpt-4o", "sample": 1.5}}, "less than or equal to 1"),
    ):
        data["routes"] = {"support": {**route, **extra}}
        with pytest.raises(ValueError, match=message):
            SluiceConfig.model_validate(data)
    data["routes"] = {"support": {**route, "shadow": {"candidate": "gpt-4o"}}}
    assert SluiceConfig.model_validate(data).routes["support"].shadow is not None


def test_texts_kept_for_judging_are_bounded_and_hold_no_nul() -> None:
    from sluice.eval.live import MAX_TEXT_CHARS, answer_text, question_text
    from sluice.types import ChatRequest, ChatResponse, Message, TextPart

    resp = ChatResponse("r", "m", [TextPart("a\x00b" * MAX_TEXT_CHARS)])
    text = answer_text(resp)
    assert "\x00" not in text and len(text) == MAX_TEXT_CHARS
    req = ChatRequest("m", [Message("user", [TextPart("q\x00" * MAX_TEXT_CHARS)])])
    question = question_text(req)
    assert "\x00" not in question and len(question) == MAX_TEXT_CHARS
    assert answer_text(None) == ""
