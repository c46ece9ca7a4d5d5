"""Batch input checks: every bad line is reported by its number, nothing raises."""

from __future__ import annotations

import orjson

from sluice.batch.model import Counts, identity_from_json, identity_to_json
from sluice.batch.runner import anthropic_line, openai_line
from sluice.batch.validate import parse_anthropic, parse_openai
from sluice.identity import Budget, Identity, RateLimits

URL = "/v1/chat/completions"


def _line(custom_id: object, **over: object) -> bytes:
    line = {
        "custom_id": custom_id,
        "method": "POST",
        "url": URL,
        "body": {"model": "m", "messages": []},
    }
    return orjson.dumps({**line, **over})


def test_each_bad_line_is_reported_with_its_number() -> None:
    data = b"\n".join(
        [
            _line("a"),
            b"{oops",
            b"[1, 2]",
            _line("a"),
            _line(""),
            _line("b", method="GET"),
            _line("c", url="/v1/embeddings"),
            _line("d", body={"messages": []}),
            b"",
            _line("e"),
        ]
    )
    parsed = parse_openai(data, URL, max_items=100)
    assert [(i.idx, i.custom_id) for i in parsed.items] == [(1, "a"), (10, "e")]
    codes = {e["line"]: e["code"] for e in parsed.errors}
    assert codes == {
        2: "invalid_json_line",
        3: "invalid_json_line",
        4: "duplicate_custom_id",
        5: "missing_required_parameter",
        6: "invalid_value",
        7: "mismatched_endpoint",
        8: "missing_required_parameter",
    }


def test_limits_and_empty_input() -> None:
    many = b"\n".join(_line(f"x{n}") for n in range(5))
    parsed = parse_openai(many, URL, max_items=3)
    assert len(parsed.items) == 3 and parsed.errors[0]["code"] == "too_many_requests"
    assert parse_openai(b"\n\n", URL, 10).errors[0]["code"] == "empty_file"
    flood = b"\n".join(b"{" for _ in range(500))
    bad = parse_openai(flood, URL, 1000)
    assert len(bad.errors) == 100 and bad.error_count == 500  # bounded report


def test_anthropic_requests() -> None:
    ok = {"custom_id": "q", "params": {"model": "m", "max_tokens": 5, "messages": []}}
    assert [i.custom_id for i in parse_anthropic([ok], 10).items] == ["q"]
    assert parse_anthropic("nope", 10).errors
    assert parse_anthropic([ok, ok], 10).errors[0]["code"] == "duplicate_custom_id"
    assert parse_anthropic([ok] * 11, 10).errors


def test_identity_round_trip() -> None:
    who = Identity(
        key_id="k1",
        tenant="acme",
        team="t",
        allowed_models=("m",),
        limits=RateLimits(rpm=5),
        budgets=(Budget(usd=3.0),),
    )
    assert identity_from_json(orjson.loads(orjson.dumps(identity_to_json(who)))) == who
    assert identity_from_json(identity_to_json(Identity.anonymous())) is Identity.anonymous()


def test_result_lines_and_counts() -> None:
    ok = {"status_code": 200, "request_id": "r", "body": {"id": "x"}}
    assert openai_line("a", "succeeded", ok)["response"] == ok
    assert openai_line("a", "expired", None)["error"]["code"] == "batch_expired"
    assert openai_line("a", "cancelled", None)["error"]["code"] == "batch_cancelled"
    assert anthropic_line("a", "succeeded", ok)["result"] == {
        "type": "succeeded",
        "message": {"id": "x"},
    }
    assert anthropic_line("a", "cancelled", None)["result"] == {"type": "canceled"}
    assert anthropic_line("a", "errored", None)["result"]["type"] == "errored"
    counts = Counts.of(
        {
            "pending": 1,
            "running": 2,
            "succeeded": 3,
            "errored": 4,
            "cancelled": 5,
            "expired": 6,
            "bogus": 9,
        }
    )
    assert counts.openai(21) == {"total": 21, "completed": 3, "failed": 15}
    assert counts.anthropic()["processing"] == 3 and counts.total == 21
