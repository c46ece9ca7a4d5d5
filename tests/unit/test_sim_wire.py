"""Wire formats of the simulator: request parsing, usage counting, exact response bytes."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from sluice.sim import anthropic_wire, openai_wire
from sluice.sim.state import PromptCache
from sluice.sim.text import plan_answer, tool_json
from sluice.tokens import count_prompt

SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def sse_data(events: list[tuple[bytes, bool]]) -> list[Any]:
    out = []
    for raw, _ in events:
        for line in raw.decode().splitlines():
            if line.startswith("data: "):
                payload = line[6:]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


# --- OpenAI ------------------------------------------------------------------------------


def test_openai_prompt_counts_every_text_piece() -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "be kind"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "x"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "search", "arguments": '{"q":"cats"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "three cats"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "search", "description": "find", "parameters": SCHEMA},
            }
        ],
    }
    prompt = openai_wire.parse_request(body)
    expected = [
        "be kind",
        "look",
        '{"q":"cats"}',
        "three cats",
        tool_json("search", "find", SCHEMA),
    ]
    assert sorted(prompt.texts) == sorted(expected)
    assert prompt.n_messages == 4
    assert prompt.tool_result_text == "three cats" and prompt.last_user_text is None
    assert count_prompt(prompt.texts, 4) == count_prompt(expected, 4)


def test_openai_options() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 9,
        "max_completion_tokens": 5,
        "stop": "END",
        "seed": 4,
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
    }
    prompt = openai_wire.parse_request(body)
    assert prompt.max_tokens == 5 and prompt.stop == ["END"] and prompt.seed == 4
    assert prompt.tool_mode == "any" and prompt.parallel_allowed is False
    assert prompt.json_schema == SCHEMA and prompt.last_user_text == "hi"
    with pytest.raises(openai_wire.WireError):
        openai_wire.parse_request({"model": "m", "messages": "nope"})
    with pytest.raises(openai_wire.WireError):
        openai_wire.parse_request({**body, "max_completion_tokens": 0})


def test_openai_completion_body_shape() -> None:
    prompt = openai_wire.parse_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    )
    answer = plan_answer(prompt, 10)
    body = json.loads(openai_wire.completion_body("chatcmpl-1", 7, "m", answer, 11, 0))
    assert body == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 7,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 11,
            "completion_tokens": 10,
            "total_tokens": 21,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "system_fingerprint": "sluice-sim",
    }


def test_openai_text_stream_chunks() -> None:
    prompt = openai_wire.parse_request(
        {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    )
    answer = plan_answer(prompt, 8)
    chunks = sse_data(openai_wire.stream_events("chatcmpl-1", 7, "m", answer, 11, 0, True))
    assert chunks[-1] == "[DONE]"
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] == 8
    first, *middle, final = chunks[:-2]
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"]["content"] for c in middle] == answer.pieces
    assert final["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    for chunk in chunks[:-1]:
        assert chunk["object"] == "chat.completion.chunk" and chunk["id"] == "chatcmpl-1"
        assert chunk["system_fingerprint"] == "sluice-sim"
    assert all(c["usage"] is None for c in chunks[:-2])
    plain = sse_data(openai_wire.stream_events("chatcmpl-1", 7, "m", answer, 11, 0, False))
    assert "usage" not in plain[1] and len(plain) == len(chunks) - 1


def test_openai_tool_call_stream_chunks() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "parallel please"}],
        "tools": [
            {"type": "function", "function": {"name": n, "parameters": SCHEMA}} for n in ("a", "b")
        ],
    }
    answer = plan_answer(openai_wire.parse_request(body), 24)
    chunks = sse_data(openai_wire.stream_events("id", 1, "m", answer, 1, 0, False))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    args: dict[int, str] = {}
    for chunk in chunks[1:-2]:
        (call,) = chunk["choices"][0]["delta"]["tool_calls"]
        if "id" in call:
            assert call["type"] == "function" and call["function"]["arguments"] == ""
            assert call["id"] == answer.tool_calls[call["index"]].id
        args[call["index"]] = args.get(call["index"], "") + call["function"]["arguments"]
    assert args == {0: answer.tool_calls[0].arguments, 1: answer.tool_calls[1].arguments}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_openai_prefix_cache() -> None:
    cache = PromptCache()
    small = {"messages": [{"role": "user", "content": "hi"}]}
    assert openai_wire.cached_prefix_tokens(small, "m", cache, 0.0) == 0
    assert len(cache) == 0
    long = {
        "messages": [
            {"role": "system", "content": "word " * 1200},
            {"role": "user", "content": "q1"},
        ]
    }
    assert openai_wire.cached_prefix_tokens(long, "m", cache, 0.0) == 0
    nxt = {
        "messages": [
            *long["messages"],
            {"role": "assistant", "content": "a"},
            {"role": "user", "content": "q2"},
        ]
    }
    cached = openai_wire.cached_prefix_tokens(nxt, "m", cache, 1.0)
    assert cached == 1152  # 3 + 3 + 1200 + 3 + 1 = 1210 tokens, in 128-token steps
    assert openai_wire.cached_prefix_tokens(nxt, "other-model", cache, 1.0) == 0
    assert openai_wire.cached_prefix_tokens(nxt, "m", cache, 1000.0) == 0  # expired


def test_openai_error_body() -> None:
    body = orjson.loads(openai_wire.error_body(429, "slow down", code="rate_limit_exceeded"))
    assert body == {
        "error": {
            "message": "slow down",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert orjson.loads(openai_wire.error_body(503, "x"))["error"]["type"] == "server_error"


# --- Anthropic ---------------------------------------------------------------------------


def test_anthropic_prompt_counts_every_text_piece() -> None:
    body = {
        "model": "claude",
        "max_tokens": 10,
        "system": [{"type": "text", "text": "sys one"}, {"type": "text", "text": "sys two"}],
        "messages": [
            {"role": "user", "content": "find cats"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "ok"},
                    {"type": "tool_use", "id": "t1", "name": "search", "input": {"q": "cats"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "three cats"}],
                    }
                ],
            },
        ],
        "tools": [{"name": "search", "input_schema": SCHEMA}],
    }
    prompt = anthropic_wire.parse_request(body)
    expected = [
        "sys one",
        "sys two",
        "find cats",
        "ok",
        '{"q":"cats"}',
        "three cats",
        tool_json("search", None, SCHEMA),
    ]
    assert sorted(prompt.texts) == sorted(expected)
    assert prompt.n_messages == 4  # three messages + the system prompt
    assert prompt.tool_result_text == "three cats" and prompt.last_user_text is None
    no_system = anthropic_wire.parse_request({**body, "system": ""})
    assert no_system.n_messages == 3


def test_anthropic_options() -> None:
    body = {
        "model": "m",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "stop_sequences": ["END"],
        "tool_choice": {"type": "tool", "name": "a", "disable_parallel_tool_use": True},
        "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}},
    }
    prompt = anthropic_wire.parse_request(body)
    assert prompt.max_tokens == 5 and prompt.stop == ["END"] and prompt.last_user_text == "hi"
    assert prompt.tool_mode == "tool" and prompt.forced_tool == "a"
    assert prompt.parallel_allowed is False and prompt.json_schema == SCHEMA
    with pytest.raises(openai_wire.WireError):
        anthropic_wire.parse_request({"model": "m", "messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(openai_wire.WireError):
        anthropic_wire.parse_request({**body, "messages": [{"role": "system", "content": "x"}]})


def test_anthropic_message_body_shape() -> None:
    prompt = anthropic_wire.parse_request(
        {"model": "m", "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]}
    )
    answer = plan_answer(prompt, 10)
    body = json.loads(anthropic_wire.message_body("msg_1", "m", answer, 5, 100, 7))
    assert body == {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "m",
        "content": [{"type": "text", "text": answer.text}],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 5,
            "output_tokens": 3,
            "cache_creation_input_tokens": 7,
            "cache_read_input_tokens": 100,
        },
    }


def test_anthropic_text_stream_events() -> None:
    prompt = anthropic_wire.parse_request(
        {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}
    )
    answer = plan_answer(prompt, 6)
    events = anthropic_wire.stream_events("msg_1", "m", answer, 9, 0, 0)
    names = [raw.split(b"\n", 1)[0].decode() for raw, _ in events]
    assert names == [
        "event: message_start",
        "event: content_block_start",
        "event: ping",
        *["event: content_block_delta"] * 6,
        "event: content_block_stop",
        "event: message_delta",
        "event: message_stop",
    ]
    data = sse_data(events)
    for name, payload in zip(names, data, strict=True):
        assert payload["type"] == name.removeprefix("event: ")
    start = data[0]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"] == {
        "input_tokens": 9,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert data[1]["content_block"] == {"type": "text", "text": ""}
    assert "".join(d["delta"]["text"] for d in data[3:9]) == answer.text
    assert data[3]["delta"]["type"] == "text_delta"
    assert data[10]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert data[10]["usage"]["output_tokens"] == 6 and data[10]["usage"]["input_tokens"] == 9
    assert [paced for _, paced in events].count(True) == 6


def test_anthropic_tool_stream_events() -> None:
    body = {
        "model": "m",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "parallel"}],
        "tools": [{"name": n, "input_schema": SCHEMA} for n in ("a", "b")],
    }
    answer = plan_answer(anthropic_wire.parse_request(body), 24, id_prefix="toolu_")
    data = sse_data(anthropic_wire.stream_events("msg_1", "m", answer, 9, 0, 0))
    starts = [d for d in data if d["type"] == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1]
    assert starts[1]["content_block"] == {
        "type": "tool_use",
        "id": answer.tool_calls[1].id,
        "name": "b",
        "input": {},
    }
    for index, call in enumerate(answer.tool_calls):
        parts = [
            d["delta"]["partial_json"]
            for d in data
            if d["type"] == "content_block_delta" and d["index"] == index
        ]
        assert len(parts) > 1 and "".join(parts) == call.arguments
    assert [d["type"] for d in data].count("ping") == 1
    assert data[-2]["delta"]["stop_reason"] == "tool_use"


def cached_body(system_words: int, question: str, model: str = "claude-sonnet") -> Any:
    return {
        "model": model,
        "max_tokens": 10,
        "system": [
            {"type": "text", "text": "rule " * system_words, "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [{"role": "user", "content": question}],
    }


def test_anthropic_cache_write_then_read() -> None:
    cache = PromptCache()
    body = cached_body(1100, "q1")
    read, write = anthropic_wire.cache_usage(body, "claude-sonnet", cache, 0.0)
    assert (read, write) == (0, 3 + 3 + 1100)  # request + system framing + text
    read, write = anthropic_wire.cache_usage(cached_body(1100, "q2"), "claude-sonnet", cache, 1.0)
    assert (read, write) == (1106, 0)
    assert anthropic_wire.cache_usage(body, "claude-sonnet", cache, 1000.0) == (0, 1106)
    short = cached_body(500, "q")
    assert anthropic_wire.cache_usage(short, "claude-sonnet", cache, 0.0) == (0, 0)
    haiku = cached_body(1500, "q", "claude-haiku")
    assert anthropic_wire.cache_usage(haiku, "claude-haiku", cache, 0.0) == (0, 0)
    prompt = anthropic_wire.parse_request(body)
    assert count_prompt(prompt.texts, prompt.n_messages) > 1106


def test_anthropic_cache_moving_breakpoint_reads_earlier_prefix() -> None:
    cache = PromptCache()
    turn1 = cached_body(1100, "")
    turn1["system"][0].pop("cache_control")
    turn1["messages"] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "first question", "cache_control": {"type": "ephemeral"}}
            ],
        },
    ]
    _, written = anthropic_wire.cache_usage(turn1, "m", cache, 0.0)
    turn2 = cached_body(1100, "")
    turn2["system"][0].pop("cache_control")
    turn2["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "first question"}]},
        {"role": "assistant", "content": "answer"},
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "second",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                }
            ],
        },
    ]
    read, write = anthropic_wire.cache_usage(turn2, "m", cache, 1.0)
    assert read == written and write == (3 + 2) + (3 + 2)  # two more messages
    assert anthropic_wire.cache_usage(turn2, "m", cache, 2000.0) == (read + write, 0)


def test_anthropic_top_level_cache_control_marks_the_last_block() -> None:
    cache = PromptCache()
    body = {
        "model": "m",
        "max_tokens": 5,
        "cache_control": {"type": "ephemeral"},
        "system": "rule " * 1100,
        "messages": [{"role": "user", "content": "q"}],
    }
    assert anthropic_wire.cache_usage(body, "m", cache, 0.0) == (0, 3 + 3 + 1100 + 3 + 1)
    assert anthropic_wire.cache_usage(body, "m", cache, 1.0) == (1110, 0)


def test_anthropic_error_shapes() -> None:
    assert orjson.loads(anthropic_wire.error_body(529, "busy")) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "busy"},
    }
    assert anthropic_wire.error_event(500, "x").startswith(b"event: error\ndata: ")
    models = orjson.loads(anthropic_wire.models_body(["a", "b"]))
    assert models["first_id"] == "a" and models["data"][1]["type"] == "model"
