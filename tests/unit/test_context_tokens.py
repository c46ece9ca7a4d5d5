"""Token counts against values checked by hand and by the OpenAI API, and calibration."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sluice import tokens as approx
from sluice.context.encodings import EXPECTED_SHA256, cache_file, ensure_files, get_encoding
from sluice.context.tokens import (
    CLAUDE_MARGIN,
    Calibration,
    TokenCount,
    count_messages,
    count_request,
    family,
)
from sluice.types import ChatRequest, Message, TextPart, Tool, ToolCallPart, ToolResultPart

# The OpenAI cookbook's example ("How to count tokens with tiktoken"): the API reported
# 129 prompt tokens for gpt-3.5-turbo / gpt-4 (cl100k) and 124 for gpt-4o (o200k).
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]


def user(text: str) -> Message:
    return Message("user", [TextPart(text)])


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4", 129),
        ("gpt-3.5-turbo", 129),
        ("gpt-4o", 124),
        ("gpt-4o-mini", 124),
        ("gpt-4.1", 124),
        ("gpt-4.1-mini", 124),
        ("gpt-5", 124),
        ("o4-mini", 124),
    ],
)
def test_cookbook_counts_match_the_api(model: str, expected: int) -> None:
    assert count_messages(COOKBOOK, model) == expected


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1", "gpt-5", "gpt-4"])
def test_hello_world_by_hand(model: str) -> None:
    # "hello world" is 2 tokens in cl100k ([15339, 1917]) and o200k ([24912, 2375]);
    # "user" is 1. One message: 3 framing + 1 role + 2 text, plus 3 priming the reply.
    enc = get_encoding(family(model) or "")
    assert len(enc.encode("hello world")) == 2
    got = count_request(ChatRequest(model, [user("hello world")]), model)
    assert got == TokenCount(9, exact=True)


def test_system_prompt_is_one_more_message() -> None:
    req = ChatRequest("gpt-4o", [user("hello world")], system=[TextPart("Be brief.")])
    plain = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello world"},
    ]
    assert count_request(req, "gpt-4o") == TokenCount(count_messages(plain, "gpt-4o"), True)


def test_tools_and_tool_calls_are_estimates() -> None:
    tool = Tool("lookup", "find a thing", {"type": "object"})
    with_tools = ChatRequest("gpt-4o", [user("hi")], tools=[tool])
    assert count_request(with_tools, "gpt-4o").exact is False
    calls = ChatRequest(
        "gpt-4o",
        [
            user("hi"),
            Message("assistant", [ToolCallPart("c1", "lookup", '{"q": "x"}')]),
            Message("tool", [ToolResultPart("c1", [TextPart("found")])]),
        ],
    )
    counted = count_request(calls, "gpt-4o")
    assert counted.exact is False
    assert counted.tokens > count_request(ChatRequest("gpt-4o", [user("hi")]), "gpt-4o").tokens


def test_claude_is_o200k_plus_margin_marked_estimate() -> None:
    req = ChatRequest("claude-sonnet-4-5", [user("The quick brown fox jumps over the lazy dog.")])
    o200k = count_request(req, "gpt-4o").tokens
    got = count_request(req, "claude-sonnet-4-5")
    assert got.exact is False
    assert got.tokens == -(-o200k * CLAUDE_MARGIN // 1)


def test_unknown_models_use_the_simulators_estimator() -> None:
    req = ChatRequest("llama-local", [user("some words to count here")])
    assert count_request(req, "llama-local") == TokenCount(
        approx.estimate_request_tokens(req), exact=False
    )


def test_encoding_files_are_rebuilt_byte_for_byte(tmp_path: Path) -> None:
    for name, sha in EXPECTED_SHA256.items():
        path = ensure_files(tmp_path, name)
        assert path == cache_file(tmp_path, name)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    # tiktoken names the file by the sha1 of its download URL
    url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    assert cache_file(tmp_path, "o200k_base").name == hashlib.sha1(url.encode()).hexdigest()


def test_a_corrupt_cache_file_is_replaced(tmp_path: Path) -> None:
    path = cache_file(tmp_path, "cl100k_base")
    path.write_bytes(b"garbage")
    ensure_files(tmp_path, "cl100k_base")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == EXPECTED_SHA256["cl100k_base"]


def test_calibration_converges_to_the_reported_ratio() -> None:
    cal = Calibration(alpha=0.2)
    assert cal.correct("m", TokenCount(100, False)) == 100  # nothing learned yet
    cal.observe("m", 100, 200)  # first sample taken as is
    for _ in range(30):
        cal.observe("m", 100, 130)
    assert cal.ratio("m") == pytest.approx(1.3, abs=0.01)
    assert cal.correct("m", TokenCount(1000, False)) == pytest.approx(1300, abs=10)
    assert cal.ratio("other") == 1.0
    assert cal.samples("m") == 31


def test_calibration_ignores_empty_usage_and_clamps_outliers() -> None:
    cal = Calibration()
    cal.observe("m", 100, 0)
    assert cal.samples("m") == 0
    cal.observe("m", 1, 10_000)
    assert cal.ratio("m") == 4.0
