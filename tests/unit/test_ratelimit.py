"""Provider rate-limit headers → RateLimitInfo."""

from __future__ import annotations

import pytest

from sluice.providers.ratelimit import parse_duration, parse_ratelimit, parse_retry_after


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3s", 3723.0),
        ("0.5", 0.5),
        ("7.66s", 7.66),
        ("", None),
        ("soon", None),
    ],
)
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_openai_headers() -> None:
    info = parse_ratelimit(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149984",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert info is not None
    assert (info.limit_requests, info.remaining_requests, info.reset_requests_s) == (60, 59, 1.0)
    assert (info.limit_tokens, info.remaining_tokens, info.reset_tokens_s) == (150000, 149984, 360)


def test_anthropic_headers_reset_is_relative_to_now() -> None:
    now = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    info = parse_ratelimit(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2023-11-14T22:13:30Z",
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "39000",
            "anthropic-ratelimit-tokens-reset": "2023-11-14T22:14:20Z",
            "retry-after": "3",
        },
        now=now,
    )
    assert info is not None
    assert info.remaining_requests == 49 and info.reset_requests_s == pytest.approx(10)
    assert info.remaining_tokens == 39000 and info.reset_tokens_s == pytest.approx(60)
    assert info.retry_after_s == 3


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480) == 10
    assert parse_retry_after({"retry-after": "garbage"}) is None
    assert parse_retry_after({}) is None


def test_no_headers_is_none() -> None:
    assert parse_ratelimit({"content-type": "application/json"}) is None
