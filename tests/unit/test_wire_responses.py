"""The Responses API codec alone: body → neutral request, neutral answer/stream → wire."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sluice.errors import InvalidRequestError, RateLimitError
from sluice.types import (
    CallMeta,
    ChatResponse,
    Finish,
    ImagePart,
    StreamEvent,
    StreamStart,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolCallStart,
    ToolResultPart,
    Usage,
    UsageUpdate,
)
from sluice.wire.responses.request import ResponsesParams, decode_params, decode_request
from sluice.wire.responses.response import encode_response, output_items
from sluice.wire.responses.stream import ResponsesEventEncoder

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def decode(body: dict[str, Any], history: list[dict[str, Any]] | None = None) -> Any:
    params = decode_params(body)
    return decode_request(body, CallMeta(), params, history or []), params


def test_string_input_and_instructions() -> None:
    req, params = decode({"model": "m", "input": "hi", "instructions": "Be brief."})
    assert [p.text for p in req.system] == ["Be brief."]
    assert [(m.role, m.parts) for m in req.messages] == [("user", [TextPart("hi")])]
    assert req.extras == {}  # nothing of this wire format is forwarded verbatim
    assert params.store is True and params.input_items[0]["content"] == "hi"


def test_items_become_one_conversation() -> None:
    body = {
        "model": "m",
        "input": [
            {"role": "developer", "content": "Rules."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Look"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AA",
                        "detail": "low",
                    },
                ],
            },
            {"role": "assistant", "content": [{"type": "output_text", "text": "Calling."}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": "two"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ],
    }
    req, _ = decode(body)
    assert [p.text for p in req.system] == ["Rules."]
    assert [m.role for m in req.messages] == ["user", "assistant", "tool", "tool"]
    assert req.messages[0].parts[1] == ImagePart("data:image/png;base64,AA", "low")
    assistant = req.messages[1].parts
    assert assistant[0] == TextPart("Calling.")
    assert [p.id for p in assistant if isinstance(p, ToolCallPart)] == ["c1", "c2"]
    assert req.messages[3].parts == [ToolResultPart("c2", [TextPart("two")])]


def test_history_comes_before_the_new_input() -> None:
    history: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": "first"},
        {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
         "content": [{"type": "output_text", "text": "answer", "annotations": []}]},
    ]  # fmt: skip
    req, _ = decode({"model": "m", "input": "second"}, history)
    assert [m.parts[0] for m in req.messages] == [
        TextPart("first"),
        TextPart("answer"),
        TextPart("second"),
    ]


def test_tools_formats_and_sampling() -> None:
    body = {
        "model": "m",
        "input": "x",
        "tools": [WEATHER, {**WEATHER, "name": "loose", "strict": False}],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
        "max_output_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.9,
        "parallel_tool_calls": False,
        "metadata": {"feature": "search"},
        "store": False,
    }
    req, params = decode(body)
    assert [t.name for t in req.tools] == ["get_weather", "loose"]
    assert [t["strict"] for t in params.tools] == [True, False]  # OpenAI's default is strict
    assert req.tool_choice is not None and req.tool_choice.name == "get_weather"
    assert req.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "w", "schema": {"type": "object"}},
    }
    assert (req.max_tokens, req.temperature, req.top_p) == (64, 0.5, 0.9)
    assert req.parallel_tool_calls is False and req.meta.metadata == {"feature": "search"}
    assert params.store is False
    json_object, _ = decode(
        {"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}
    )
    assert json_object.response_format == {"type": "json_object"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "m"}, "input"),
        ({"model": "m", "input": []}, "input"),
        ({"model": "m", "input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
        ({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file"}]}]},
         "input[0].content[0].type"),
        ({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"model": "m", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "m", "input": "x", "metadata": {"k": 1}}, "metadata.k"),
        ({"model": "m", "input": "x", "background": True}, "background"),
        ({"model": "m", "input": [{"role": "assistant", "content": "only me"}]}, "input"),
    ],
)  # fmt: skip
def test_bad_bodies_are_400s_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        decode(body)
    assert caught.value.param == param


def test_plain_answer_in_the_responses_shape() -> None:
    resp = ChatResponse(
        id="up",
        model="x",
        parts=[TextPart("It is "), TextPart("sunny."), ToolCallPart("call_1", "f", '{"a":1}')],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=10, output_tokens=5, cache_read_tokens=4),
    )
    params = ResponsesParams(instructions="I", metadata={"k": "v"})
    body = encode_response(resp, "gpt-4o-mini", "resp_1", params, 1_700_000_000.0)
    assert body["id"] == "resp_1" and body["object"] == "response"
    assert body["status"] == "completed" and body["model"] == "gpt-4o-mini"
    message, call = body["output"]
    assert message["content"][0]["text"] == "It is sunny."
    assert (call["type"], call["call_id"], call["arguments"]) == (
        "function_call",
        "call_1",
        '{"a":1}',
    )
    assert body["usage"]["input_tokens_details"]["cached_tokens"] == 4
    assert body["usage"]["total_tokens"] == 15
    assert (body["instructions"], body["metadata"]) == ("I", {"k": "v"})
    cut = encode_response(ChatResponse("u", "x", [TextPart("a")], "length"), "m", "r", params, 0.0)
    assert (cut["status"], cut["incomplete_details"]) == (
        "incomplete",
        {"reason": "max_output_tokens"},
    )


def events_of(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        head, data = block.split("\n", 1)
        event = orjson.loads(data.removeprefix("data: "))
        assert head == "event: " + event["type"]
        out.append(event)
    return out


def test_stream_events_in_order_with_text_and_tool_calls() -> None:
    finals: list[dict[str, Any]] = []
    enc = ResponsesEventEncoder("resp_1", "m", ResponsesParams(), finals.append)
    sent: list[StreamEvent] = [
        StreamStart("up", "m"),
        TextDelta("Hel"),
        TextDelta("lo"),
        ToolCallStart(0, "call_a", "f"),
        ToolCallDelta(0, '{"x":'),
        ToolCallStart(1, "call_b", "g"),
        ToolCallDelta(0, "1}"),
        ToolCallDelta(1, "{}"),
        Finish("tool_calls"),
        UsageUpdate(Usage(3, 4)),
    ]
    raw = b"".join(enc.encode(e) for e in sent)
    events = events_of(raw + enc.close())
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]["response"]
    assert final == finals[0]
    assert [o["type"] for o in final["output"]] == ["message", "function_call", "function_call"]
    assert final["output"][0]["content"][0]["text"] == "Hello"
    assert [o.get("arguments") for o in final["output"][1:]] == ['{"x":1}', "{}"]
    assert [o["output_index"] for o in events if o["type"].endswith("arguments.delta")] == [1, 1, 2]
    assert final["usage"]["output_tokens"] == 4 and final["status"] == "completed"


def test_stream_failure_is_an_error_event_then_response_failed() -> None:
    finals: list[dict[str, Any]] = []
    enc = ResponsesEventEncoder("resp_1", "m", ResponsesParams(), finals.append)
    raw = enc.encode(StreamStart("up", "m")) + enc.encode(TextDelta("par"))
    events = events_of(raw + enc.error(RateLimitError("slow down")))
    error, failed = events[-2:]
    assert (error["type"], error["message"], error["code"]) == (
        "error",
        "slow down",
        "rate_limit_exceeded",
    )
    assert failed["type"] == "response.failed"
    assert failed["response"]["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert finals == []  # a failed answer is never stored


def test_a_cut_stream_ends_incomplete() -> None:
    enc = ResponsesEventEncoder("resp_1", "m", ResponsesParams())
    raw = enc.encode(TextDelta("a")) + enc.encode(Finish("length"))
    last = events_of(raw + enc.close())[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_output_items_skip_empty_text() -> None:
    items = output_items(ChatResponse("u", "m", [ToolCallPart("c", "f", "{}")]))
    assert [i["type"] for i in items] == ["function_call"]
