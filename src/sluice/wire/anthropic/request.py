"""Anthropic Messages request ⇄ neutral `ChatRequest`.

A user message holding `tool_result` blocks decodes into one neutral tool turn per result
(then a user turn for any other blocks); encoding merges them back, tool results first, as
the API requires. `cache_control` is kept on every block that carries it.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.structured import schema_instruction
from sluice.types import (
    CacheControl,
    CallMeta,
    ChatRequest,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from sluice.wire.fields import (
    as_object,
    invalid,
    opt,
    opt_number,
    opt_positive_int,
    req,
    string_list,
)

_NEUTRAL_KEYS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
    }
)
DEFAULT_MAX_TOKENS = 4096


# --- decode (client → neutral) ---------------------------------------------------------


def _cache(block: dict[str, Any], path: str) -> CacheControl | None:
    return opt(block, "cache_control", dict, path)


def _image(block: dict[str, Any], path: str) -> ImagePart:
    source = as_object(block.get("source"), f"{path}.source")
    kind = source.get("type")
    if kind == "base64":
        media = req(source, "media_type", str, f"{path}.source")
        data = req(source, "data", str, f"{path}.source")
        url = f"data:{media};base64,{data}"
    elif kind == "url":
        url = req(source, "url", str, f"{path}.source")
    else:
        raise invalid(f"{path}.source.type", "must be 'base64' or 'url'")
    return ImagePart(url=url, cache_control=_cache(block, path))


def _result_content(value: Any, path: str) -> list[TextPart | ImagePart]:
    if value is None:
        return []
    if isinstance(value, str):
        return [TextPart(value)]
    if not isinstance(value, list):
        raise invalid(path, "must be a string or an array of blocks")
    out: list[TextPart | ImagePart] = []
    for i, block in enumerate(value):
        where = f"{path}[{i}]"
        block = as_object(block, where)
        if block.get("type") == "text":
            out.append(TextPart(req(block, "text", str, where), _cache(block, where)))
        elif block.get("type") == "image":
            out.append(_image(block, where))
        else:
            raise invalid(f"{where}.type", "must be 'text' or 'image'")
    return out


def _block(block: dict[str, Any], role: str, where: str) -> Part:
    kind = block.get("type")
    if kind == "text":
        return TextPart(req(block, "text", str, where), _cache(block, where))
    if kind == "image" and role == "user":
        return _image(block, where)
    if kind == "tool_use" and role == "assistant":
        arguments = orjson.dumps(as_object(block.get("input", {}), f"{where}.input")).decode()
        return ToolCallPart(
            req(block, "id", str, where),
            req(block, "name", str, where),
            arguments,
            _cache(block, where),
        )
    if kind == "tool_result" and role == "user":
        return ToolResultPart(
            tool_call_id=req(block, "tool_use_id", str, where),
            content=_result_content(block.get("content"), f"{where}.content"),
            is_error=bool(opt(block, "is_error", bool, where)),
            cache_control=_cache(block, where),
        )
    if kind == "thinking" and role == "assistant":
        return ThinkingPart(req(block, "thinking", str, where), opt(block, "signature", str, where))
    raise invalid(f"{where}.type", f"unsupported content block {kind!r} in a {role} message")


def _decode_message(raw: Any, i: int) -> list[Message]:
    path = f"messages[{i}]"
    msg = as_object(raw, path)
    role = msg.get("role")
    if role not in ("user", "assistant"):
        raise invalid(f"{path}.role", "must be 'user' or 'assistant'")
    content = msg.get("content")
    if isinstance(content, str):
        return [Message(role, [TextPart(content)])]
    if not isinstance(content, list):
        raise invalid(f"{path}.content", "must be a string or an array of content blocks")
    parts = [
        _block(as_object(b, f"{path}.content[{j}]"), role, f"{path}.content[{j}]")
        for j, b in enumerate(content)
    ]
    results = [p for p in parts if isinstance(p, ToolResultPart)]
    others: list[Part] = [p for p in parts if not isinstance(p, ToolResultPart)]
    out = [Message("tool", [r]) for r in results]
    if others or not results:
        out.append(Message(role, others))
    return out


def _decode_system(value: Any) -> list[TextPart]:
    if value is None:
        return []
    if isinstance(value, str):
        return [TextPart(value)]
    if not isinstance(value, list):
        raise invalid("system", "must be a string or an array of text blocks")
    out = []
    for i, block in enumerate(value):
        where = f"system[{i}]"
        block = as_object(block, where)
        if block.get("type") != "text":
            raise invalid(f"{where}.type", "must be 'text'")
        out.append(TextPart(req(block, "text", str, where), _cache(block, where)))
    return out


def _decode_tools(value: Any) -> list[Tool]:
    if not isinstance(value, list):
        raise invalid("tools", "must be an array")
    tools = []
    for i, item in enumerate(value):
        where = f"tools[{i}]"
        item = as_object(item, where)
        if item.get("type", "custom") != "custom":
            raise invalid(f"{where}.type", f"server tool {item.get('type')!r} is not supported")
        tools.append(
            Tool(
                name=req(item, "name", str, where),
                description=opt(item, "description", str, where),
                parameters=req(item, "input_schema", dict, where),
                cache_control=_cache(item, where),
            )
        )
    return tools


def _decode_tool_choice(value: Any) -> tuple[ToolChoice | None, bool | None]:
    if value is None:
        return None, None
    choice = as_object(value, "tool_choice")
    kind = choice.get("type")
    parallel = False if opt(choice, "disable_parallel_tool_use", bool, "tool_choice") else None
    modes = {"auto": "auto", "any": "required", "none": "none"}
    if kind in modes:
        return ToolChoice(modes[kind]), parallel  # type: ignore[arg-type]
    if kind == "tool":
        return ToolChoice("tool", req(choice, "name", str, "tool_choice")), parallel
    raise invalid("tool_choice.type", "must be 'auto', 'any', 'tool' or 'none'")


def decode_request(body: dict[str, Any], meta: CallMeta) -> ChatRequest:
    model = req(body, "model", str, "")
    max_tokens = opt_positive_int(body, "max_tokens", "")
    if max_tokens is None:
        raise invalid("max_tokens", "is required")
    raw_messages = req(body, "messages", list, "")
    if not raw_messages:
        raise invalid("messages", "must contain at least one message")
    messages: list[Message] = []
    for i, raw in enumerate(raw_messages):
        messages.extend(_decode_message(raw, i))
    metadata = opt(body, "metadata", dict, "") or {}
    meta.metadata = metadata
    user_id = metadata.get("user_id")
    meta.user = user_id if isinstance(user_id, str) else None
    tool_choice, parallel = _decode_tool_choice(body.get("tool_choice"))
    return ChatRequest(
        model=model,
        messages=messages,
        system=_decode_system(body.get("system")),
        tools=_decode_tools(body["tools"]) if body.get("tools") else [],
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_tokens=max_tokens,
        temperature=opt_number(body, "temperature", "", 0.0, 1.0),
        top_p=opt_number(body, "top_p", "", 0.0, 1.0),
        top_k=opt_positive_int(body, "top_k", ""),
        stop=string_list(body.get("stop_sequences"), "stop_sequences"),
        stream=bool(opt(body, "stream", bool, "")),
        extras={k: v for k, v in body.items() if k not in _NEUTRAL_KEYS},
        meta=meta,
    )


# --- encode (neutral → upstream) -------------------------------------------------------


def _with_cache(block: dict[str, Any], cache: CacheControl | None) -> dict[str, Any]:
    if cache is not None:
        block["cache_control"] = cache
    return block


def _encode_image(part: ImagePart) -> dict[str, Any]:
    if part.url.startswith("data:") and ";base64," in part.url:
        media, data = part.url[5:].split(";base64,", 1)
        source = {"type": "base64", "media_type": media, "data": data}
    else:
        source = {"type": "url", "url": part.url}
    return _with_cache({"type": "image", "source": source}, part.cache_control)


def arguments_object(arguments: str) -> Any:
    try:
        value = orjson.loads(arguments) if arguments else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _encode_part(part: Part) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return _with_cache({"type": "text", "text": part.text}, part.cache_control)
    if isinstance(part, ImagePart):
        return _encode_image(part)
    if isinstance(part, ToolCallPart):
        block = {
            "type": "tool_use",
            "id": part.id,
            "name": part.name,
            "input": arguments_object(part.arguments),
        }
        return _with_cache(block, part.cache_control)
    if isinstance(part, ToolResultPart):
        content: Any = [_encode_part(p) for p in part.content]
        if (
            len(part.content) == 1
            and isinstance(part.content[0], TextPart)
            and part.content[0].cache_control is None
        ):
            content = part.content[0].text
        block = {"type": "tool_result", "tool_use_id": part.tool_call_id, "content": content}
        if part.is_error:
            block["is_error"] = True
        return _with_cache(block, part.cache_control)
    if part.signature is None:
        return None  # thinking without a signature cannot be replayed to Anthropic
    return {"type": "thinking", "thinking": part.thinking, "signature": part.signature}


def _simple_text(parts: list[Part]) -> str | None:
    if len(parts) == 1 and isinstance(parts[0], TextPart) and parts[0].cache_control is None:
        return parts[0].text
    return None


def encode_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    pending_results: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role == "tool":
            pending_results.extend(b for p in msg.parts if (b := _encode_part(p)) is not None)
            continue
        blocks = [b for p in msg.parts if (b := _encode_part(p)) is not None]
        if pending_results:
            if msg.role == "user":
                out.append({"role": "user", "content": pending_results + blocks})
                pending_results = []
                continue
            out.append({"role": "user", "content": pending_results})
            pending_results = []
        simple = _simple_text(msg.parts)
        out.append({"role": msg.role, "content": simple if simple is not None else blocks})
    if pending_results:
        out.append({"role": "user", "content": pending_results})
    return out


def encode_tool_choice(choice: ToolChoice | None, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    mode = choice.mode if choice else "auto"
    out: dict[str, Any] = {"type": {"required": "any"}.get(mode, mode)}
    if mode == "tool" and choice is not None:
        out["name"] = choice.name
    if parallel is False and mode != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _native_format(req: ChatRequest) -> dict[str, Any] | None:
    fmt = req.response_format
    spec = fmt.get("json_schema") if fmt and fmt.get("type") == "json_schema" else None
    if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        return {"type": "json_schema", "schema": spec["schema"]}
    return None


def encode_request(
    req: ChatRequest,
    model: str,
    *,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    same_wire: bool = True,
    structured_output: str = "prompt",
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": req.max_tokens or default_max_tokens,
        "messages": encode_messages(req.messages),
    }
    system = list(req.system)
    native = _native_format(req) if structured_output == "native" else None
    if native is not None:
        body["output_config"] = {"format": native}
    elif (instruction := schema_instruction(req)) is not None:
        system.append(TextPart(instruction))
    if system:
        simple = _simple_text(list(system))
        body["system"] = (
            simple
            if simple is not None
            else [_with_cache({"type": "text", "text": p.text}, p.cache_control) for p in system]
        )
    if req.tools:
        body["tools"] = [
            _with_cache(
                {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "input_schema": t.parameters,
                },
                t.cache_control,
            )
            for t in req.tools
        ]
    choice = encode_tool_choice(req.tool_choice, req.parallel_tool_calls)
    if choice is not None:
        body["tool_choice"] = choice
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, 1.0)  # OpenAI allows up to 2
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.top_k is not None:
        body["top_k"] = req.top_k
    if req.stop:
        body["stop_sequences"] = req.stop
    if req.meta.user:
        body["metadata"] = {"user_id": req.meta.user}
    if req.stream:
        body["stream"] = True
    if same_wire and req.extras:
        for key, value in req.extras.items():
            body.setdefault(key, value)
    return body
