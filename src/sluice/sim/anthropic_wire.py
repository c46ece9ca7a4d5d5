"""Anthropic Messages on the wire: request → `Prompt`, answer → exact response bytes.

Event order follows the public streaming reference: message_start, then per content
block content_block_start / deltas / content_block_stop (one `ping` after the first
start), message_delta with the stop reason and cumulative usage, message_stop.
`usage.input_tokens` excludes cache reads and writes, as the real API reports it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.sim.openai_wire import WireError
from sluice.sim.text import Answer, Prompt, ToolSpec, split_fragments, tool_json
from sluice.tokens import MESSAGE_OVERHEAD, REQUEST_OVERHEAD, count_text

STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "stop_sequence": "stop_sequence",
}
CACHE_TTL_S = 300.0


def _system_texts(system: Any, out: list[str]) -> None:
    if isinstance(system, str):
        if system:
            out.append(system)
    elif isinstance(system, list):
        for block in system:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                out.append(block["text"])


def _block_texts(block: Any, out: list[str]) -> None:
    if not isinstance(block, dict):
        return
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        out.append(block["text"])
    elif kind == "tool_use":
        out.append(orjson.dumps(block.get("input", {})).decode())
    elif kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            for inner in content:
                if isinstance(inner, dict) and isinstance(inner.get("text"), str):
                    out.append(inner["text"])


def _content_texts(content: Any, out: list[str]) -> None:
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for block in content:
            _block_texts(block, out)


def _tool_texts(tool: Any, out: list[str]) -> ToolSpec | None:
    if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
        return None
    schema = tool.get("input_schema")
    params = schema if isinstance(schema, dict) else {"type": "object"}
    out.append(tool_json(tool["name"], tool.get("description"), params))
    return ToolSpec(tool["name"], params) if isinstance(schema, dict) else None


def _has_system(system: Any) -> bool:
    return bool(system) and isinstance(system, (str, list))


def parse_request(body: dict[str, Any]) -> Prompt:
    """Pull what the answer depends on out of a Messages API body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError("messages: at least one message is required", "messages")
    cap = body.get("max_tokens")
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        raise WireError("max_tokens: Field required (a positive integer)", "max_tokens")
    system = body.get("system")
    texts: list[str] = []
    _system_texts(system, texts)
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise WireError(f"messages.{i}.role: must be 'user' or 'assistant'", "messages")
        _content_texts(msg.get("content"), texts)
    n_messages = len(messages) + (1 if _has_system(system) else 0)
    prompt = Prompt(model=body["model"], key=[system, messages], texts=texts, n_messages=n_messages)
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            spec = _tool_texts(tool, texts)
            if spec is not None:
                prompt.tools.append(spec)
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind in ("none", "any"):
            prompt.tool_mode = kind
        elif kind == "tool" and isinstance(choice.get("name"), str):
            prompt.tool_mode, prompt.forced_tool = "tool", choice["name"]
        prompt.parallel_allowed = choice.get("disable_parallel_tool_use") is not True
    _last_turn(messages[-1], prompt)
    prompt.max_tokens = cap
    stop = body.get("stop_sequences")
    if isinstance(stop, list):
        prompt.stop = [s for s in stop if isinstance(s, str)]
    seed = body.get("seed")
    prompt.seed = seed if isinstance(seed, int) else None
    fmt = body.get("output_format")  # beta name; GA is output_config.format
    config = body.get("output_config")
    if not isinstance(fmt, dict) and isinstance(config, dict):
        fmt = config.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        prompt.json_mode = True
        prompt.json_schema = schema if isinstance(schema, dict) else None
    return prompt


def _last_turn(last: dict[str, Any], prompt: Prompt) -> None:
    """Tool result or plain user turn: decides between a tool call and text."""
    if last["role"] != "user":
        return
    content = last.get("content")
    blocks = content if isinstance(content, list) else []
    results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
    out: list[str] = []
    if results:
        for block in results:
            _block_texts(block, out)
        prompt.tool_result_text = " ".join(out)
    else:
        _content_texts(content, out)
        prompt.last_user_text = " ".join(out)


# --- prompt caching ---------------------------------------------------------------------


@dataclass(slots=True)
class _Point:
    key: bytes
    tokens: int
    ttl: float
    breakpoint: bool


def _strip(block: Any) -> Any:
    if isinstance(block, dict) and "cache_control" in block:
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


def _ttl(block: Any) -> float | None:
    if not isinstance(block, dict):
        return None
    cc = block.get("cache_control")
    if not isinstance(cc, dict):
        return None
    return 3600.0 if cc.get("ttl") == "1h" else CACHE_TTL_S


def _cache_points(body: dict[str, Any], model: str) -> list[_Point]:
    """Hash + token count of the prompt prefix at every breakpoint and message end.

    Order is tools → system → messages, as the API builds its cache prefix.
    """
    h = hashlib.blake2b(model.encode(), digest_size=16)
    tokens = REQUEST_OVERHEAD
    points: list[_Point] = []

    def add(block: Any, texts: list[str]) -> None:
        nonlocal tokens
        h.update(orjson.dumps(_strip(block), option=orjson.OPT_SORT_KEYS))
        tokens += sum(count_text(t) for t in texts)
        ttl = _ttl(block)
        if ttl is not None:
            points.append(_Point(h.copy().digest(), tokens, ttl, True))

    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        out: list[str] = []
        _tool_texts(tool, out)
        add(tool, out)
    system = body.get("system")
    if isinstance(system, (str, list)) and system:
        tokens += MESSAGE_OVERHEAD
        for block in [system] if isinstance(system, str) else system:
            out = []
            _system_texts([block] if isinstance(block, dict) else block, out)
            add(block, out)
    for msg in body["messages"]:
        tokens += MESSAGE_OVERHEAD
        h.update(b"\x01" + str(msg.get("role")).encode())
        content = msg.get("content")
        for block in [content] if isinstance(content, str) else content or ():
            out = []
            _content_texts([block] if isinstance(block, dict) else block, out)
            add(block, out)
        points.append(_Point(h.copy().digest(), tokens, CACHE_TTL_S, False))
    auto = _ttl(body)  # top-level cache_control: a breakpoint on the last block
    if auto is not None and points:
        points[-1].breakpoint, points[-1].ttl = True, auto
    return points


def cache_usage(body: dict[str, Any], model: str, seen: Any, now: float) -> tuple[int, int]:
    """(cache read, cache write) tokens for a request carrying `cache_control` blocks.

    The prefix up to the last breakpoint is written unless it is under the model's
    minimum (1024 tokens, 2048 for Haiku); the longest earlier prefix (breakpoint or
    message end) seen within its TTL is read. `seen` is a `PromptCache`.
    """
    points = _cache_points(body, model)
    last = max((i for i, p in enumerate(points) if p.breakpoint), default=-1)
    if last < 0:
        return 0, 0
    minimum = 2048 if "haiku" in model else 1024
    target = points[last]
    if target.tokens < minimum:
        return 0, 0
    read = 0
    for point in reversed(points[: last + 1]):
        if point.tokens >= minimum and seen.lookup(point.key, now):
            read = point.tokens
            break
    for point in points[: last + 1]:
        if point.breakpoint and point.tokens >= minimum:
            seen.store(point.key, point.ttl, now)
    return read, target.tokens - read


# --- responses --------------------------------------------------------------------------


def new_id() -> str:
    return "msg_" + os.urandom(12).hex()


def _usage(input_tokens: int, output_tokens: int, read: int, write: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": write,
        "cache_read_input_tokens": read,
    }


def message_body(
    rid: str, model: str, answer: Answer, input_tokens: int, read: int, write: int
) -> bytes:
    """The non-streaming `message` object; `input_tokens` already excludes cache tokens."""
    content: list[dict[str, Any]] = (
        [{"type": "tool_use", "id": c.id, "name": c.name, "input": c.input}
         for c in answer.tool_calls]
        if answer.tool_calls
        else [{"type": "text", "text": answer.text}]
    )  # fmt: skip
    return orjson.dumps(
        {
            "id": rid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": STOP[answer.finish],
            "stop_sequence": answer.stop_sequence,
            "usage": _usage(input_tokens, answer.output_tokens, read, write),
        }
    )


def _event(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


PING = _event(b"ping", b'{"type":"ping"}')
MESSAGE_STOP = _event(b"message_stop", b'{"type":"message_stop"}')


def stream_events(
    rid: str, model: str, answer: Answer, input_tokens: int, read: int, write: int
) -> list[tuple[bytes, bool]]:
    """Every SSE event of a streamed answer; the flag marks events paced as tokens."""
    dumps = orjson.dumps
    start = {
        "type": "message_start",
        "message": {
            "id": rid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(input_tokens, 1, read, write),
        },
    }
    events: list[tuple[bytes, bool]] = [(_event(b"message_start", dumps(start)), False)]
    blocks: list[tuple[dict[str, Any], bytes, list[str]]]
    if answer.tool_calls:
        blocks = [
            ({"type": "tool_use", "id": c.id, "name": c.name, "input": {}},
             b'"input_json_delta","partial_json":', split_fragments(c.arguments))
            for c in answer.tool_calls
        ]  # fmt: skip
    else:
        blocks = [({"type": "text", "text": ""}, b'"text_delta","text":', answer.pieces)]
    for index, (block, tag, pieces) in enumerate(blocks):
        idx = str(index).encode()
        head = {"type": "content_block_start", "index": index, "content_block": block}
        events.append((_event(b"content_block_start", dumps(head)), False))
        if index == 0:
            events.append((PING, False))
        prefix = b'{"type":"content_block_delta","index":' + idx + b',"delta":{"type":' + tag
        for piece in pieces:
            events.append((_event(b"content_block_delta", prefix + dumps(piece) + b"}}"), True))
        stop = b'{"type":"content_block_stop","index":' + idx + b"}"
        events.append((_event(b"content_block_stop", stop), False))
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": STOP[answer.finish], "stop_sequence": answer.stop_sequence},
        "usage": _usage(input_tokens, answer.output_tokens, read, write),
    }
    events.append((_event(b"message_delta", dumps(delta)), False))
    events.append((MESSAGE_STOP, False))
    return events


ERROR_TYPES = {
    400: "invalid_request_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> bytes:
    """Anthropic's error envelope."""
    kind = ERROR_TYPES.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def error_event(status: int, message: str) -> bytes:
    """An in-stream `error` event (as sent when a stream fails after it started)."""
    return _event(b"error", error_body(status, message))


def models_body(names: list[str]) -> bytes:
    data = [
        {"type": "model", "id": n, "display_name": n, "created_at": "2024-01-01T00:00:00Z"}
        for n in names
    ]
    return orjson.dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    )
