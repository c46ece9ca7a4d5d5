"""OpenAI Chat Completions on the wire: request → `Prompt`, answer → exact response bytes.

Shapes follow the public API reference (chat.completion / chat.completion.chunk,
`data: [DONE]` terminator, usage-only last chunk for `stream_options.include_usage`).
Stream chunks are built from precomputed byte prefixes so the per-token cost is one
`orjson.dumps` of the token text.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import orjson

from sluice.sim.text import Answer, Prompt, ToolSpec, split_fragments, tool_json
from sluice.tokens import MESSAGE_OVERHEAD, REQUEST_OVERHEAD, count_text

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "stop_sequence": "stop"}
DONE = b"data: [DONE]\n\n"
FINGERPRINT = "sluice-sim"
CACHE_MIN_TOKENS = 1024
CACHE_STEP = 128


class WireError(Exception):
    """A request the real API would reject with 400; `param` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


def _content_texts(content: Any, out: list[str]) -> None:
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                kind = part.get("type")
                if kind == "text" and isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif kind == "refusal" and isinstance(part.get("refusal"), str):
                    out.append(part["refusal"])


def _message_texts(msg: dict[str, Any], out: list[str]) -> None:
    _content_texts(msg.get("content"), out)
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                out.append(fn["arguments"])


def _tools(body: dict[str, Any], texts: list[str]) -> list[ToolSpec]:
    raw = body.get("tools")
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise WireError("tools must be an array", "tools")
    specs = []
    for i, item in enumerate(raw):
        fn = item.get("function") if isinstance(item, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise WireError(f"tools[{i}].function.name is required", f"tools[{i}].function")
        params = fn.get("parameters")
        params = params if isinstance(params, dict) else {"type": "object"}
        specs.append(ToolSpec(fn["name"], params))
        texts.append(tool_json(fn["name"], fn.get("description"), params))
    return specs


def parse_request(body: dict[str, Any]) -> Prompt:
    """Pull what the answer depends on out of a chat completions body."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise WireError("messages must be a non-empty array", "messages")
    texts: list[str] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise WireError(f"messages[{i}].role is required", f"messages[{i}]")
        _message_texts(msg, texts)
    prompt = Prompt(model=body["model"], key=messages, texts=texts, n_messages=len(messages))
    prompt.tools = _tools(body, texts)
    _tool_choice(body, prompt)
    last = messages[-1]
    if last["role"] == "user":
        out: list[str] = []
        _content_texts(last.get("content"), out)
        prompt.last_user_text = " ".join(out)
    elif last["role"] in ("tool", "function"):
        out = []
        _content_texts(last.get("content"), out)
        prompt.tool_result_text = " ".join(out)
    _options(body, prompt)
    return prompt


def _tool_choice(body: dict[str, Any], prompt: Prompt) -> None:
    choice = body.get("tool_choice")
    if choice == "none":
        prompt.tool_mode = "none"
    elif choice == "required":
        prompt.tool_mode = "any"
    elif isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            prompt.tool_mode, prompt.forced_tool = "tool", fn["name"]
    prompt.parallel_allowed = body.get("parallel_tool_calls") is not False


def _options(body: dict[str, Any], prompt: Prompt) -> None:
    cap = body.get("max_completion_tokens")
    cap = body.get("max_tokens") if cap is None else cap
    if cap is not None:
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise WireError("max_tokens must be a positive integer", "max_tokens")
        prompt.max_tokens = cap
    stop = body.get("stop")
    if isinstance(stop, str):
        prompt.stop = [stop]
    elif isinstance(stop, list):
        prompt.stop = [s for s in stop if isinstance(s, str)]
    seed = body.get("seed")
    prompt.seed = seed if isinstance(seed, int) else None
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_object":
            prompt.json_mode = True
        elif fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            prompt.json_mode = True
            prompt.json_schema = schema if isinstance(schema, dict) else None


def cached_prefix_tokens(body: dict[str, Any], model: str, seen: Any, now: float) -> int:
    """Tokens of the longest previously seen whole-message prefix (≥1024, 128-aligned).

    `seen` is a `PromptCache`; every prefix of this prompt long enough to cache is
    remembered for the next request.
    """
    h = hashlib.blake2b(model.encode(), digest_size=16)
    tokens = REQUEST_OVERHEAD
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        h.update(orjson.dumps(tools, option=orjson.OPT_SORT_KEYS))
        piece: list[str] = []
        _tools(body, piece)
        tokens += sum(count_text(t) for t in piece)
    points: list[tuple[bytes, int]] = []
    for msg in body["messages"]:
        h.update(orjson.dumps(msg, option=orjson.OPT_SORT_KEYS))
        out: list[str] = []
        _message_texts(msg, out)
        tokens += MESSAGE_OVERHEAD + sum(count_text(t) for t in out)
        if tokens >= CACHE_MIN_TOKENS:
            points.append((h.copy().digest(), tokens))
    hit = 0
    for key, count in reversed(points):
        if seen.lookup(key, now):
            hit = count
            break
    for key, _ in points:
        seen.store(key, 300.0, now)
    hit = hit // CACHE_STEP * CACHE_STEP
    return hit if hit >= CACHE_MIN_TOKENS else 0


def _usage(prompt_tokens: int, output_tokens: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": prompt_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def new_id() -> str:
    return "chatcmpl-" + os.urandom(12).hex()


def completion_body(
    rid: str,
    created: int,
    model: str,
    answer: Answer,
    prompt_tokens: int,
    cached: int,
    logprob: float | None = None,
) -> bytes:
    """The non-streaming `chat.completion` object; `logprob`: every token's logprob (asked)."""
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.tool_calls
        ]
    else:
        message["content"] = answer.text
    return orjson.dumps(
        {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None if logprob is None else _logprobs(answer, logprob),
                    "finish_reason": FINISH[answer.finish],
                }
            ],
            "usage": _usage(prompt_tokens, answer.output_tokens, cached),
            "system_fingerprint": FINGERPRINT,
        }
    )


def _logprobs(answer: Answer, logprob: float) -> dict[str, Any]:
    return {
        "content": [
            {"token": p, "logprob": logprob, "bytes": list(p.encode()), "top_logprobs": []}
            for p in answer.pieces
        ]
    }


def stream_events(
    rid: str,
    created: int,
    model: str,
    answer: Answer,
    prompt_tokens: int,
    cached: int,
    include_usage: bool,
) -> list[tuple[bytes, bool]]:
    """Every SSE event of a streamed answer; the flag marks events paced as tokens."""
    head = (
        b'data: {"id":"' + rid.encode() + b'","object":"chat.completion.chunk","created":'
        + str(created).encode() + b',"model":' + orjson.dumps(model)
        + b',"system_fingerprint":"' + FINGERPRINT.encode() + b'","choices":[{"index":0,"delta":'
    )  # fmt: skip
    end = b'}],"usage":null}\n\n' if include_usage else b"}]}\n\n"
    mid = b',"logprobs":null,"finish_reason":null' + end
    dumps = orjson.dumps
    events: list[tuple[bytes, bool]] = []
    if answer.tool_calls:
        events.append((head + b'{"role":"assistant","content":null}' + mid, False))
        for i, call in enumerate(answer.tool_calls):
            start = {
                "tool_calls": [
                    {
                        "index": i,
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": ""},
                    }
                ]
            }
            events.append((head + dumps(start) + mid, True))
            tag = b'{"tool_calls":[{"index":' + str(i).encode() + b',"function":{"arguments":'
            for frag in split_fragments(call.arguments):
                events.append((head + tag + dumps(frag) + b"}}]}" + mid, True))
    else:
        events.append((head + b'{"role":"assistant","content":""}' + mid, False))
        for piece in answer.pieces:
            events.append((head + b'{"content":' + dumps(piece) + b"}" + mid, True))
    finish = FINISH[answer.finish].encode()
    events.append((head + b'{},"logprobs":null,"finish_reason":"' + finish + b'"' + end, False))
    if include_usage:
        usage = dumps(_usage(prompt_tokens, answer.output_tokens, cached))
        events.append((head[: head.index(b'"choices"')] + b'"choices":[],"usage":' + usage
                       + b"}\n\n", False))  # fmt: skip
    events.append((DONE, False))
    return events


ERROR_TYPES = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    529: "server_error",
}


def error_body(
    status: int,
    message: str,
    code: str | None = None,
    param: str | None = None,
    err_type: str | None = None,
) -> bytes:
    """OpenAI's error envelope."""
    kind = err_type or ERROR_TYPES.get(status, "server_error" if status >= 500 else "api_error")
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def models_body(names: list[str]) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "sluice-sim"} for n in names
            ],
        }
    )
