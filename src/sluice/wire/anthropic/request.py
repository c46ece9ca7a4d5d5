"""Anthropic Messages request ⇄ neutral `ChatRequest`.

A user message holding `tool_result` blocks decodes into one neutral tool turn per result
(then a user turn for any other blocks); encoding merges them back, tool results first, as
the API requires. `cache_control` is kept on every block that carries it.

Blocks with no neutral meaning (`redacted_thinking`, server-tool blocks, block types newer
than this code) are kept verbatim as `OpaquePart`s; documents and search results are
`DocumentPart`s. What crosses to OpenAI and what is refused is decided in `wire/mapping.py`.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluice.structured import schema_instruction
from sluice.types import (
    AudioPart,
    CacheControl,
    CallMeta,
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    OpaquePart,
    Part,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from sluice.wire import mapping
from sluice.wire.anthropic.documents import decode_document, encode_document
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
        "output_format",
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


def _text(block: dict[str, Any], where: str) -> TextPart:
    return TextPart(
        req(block, "text", str, where),
        _cache(block, where),
        opt(block, "citations", list, where) or None,
    )


def _result_content(
    value: Any, path: str
) -> list[TextPart | ImagePart | DocumentPart | OpaquePart]:
    if value is None:
        return []
    if isinstance(value, str):
        return [TextPart(value)]
    if not isinstance(value, list):
        raise invalid(path, "must be a string or an array of blocks")
    out: list[TextPart | ImagePart | DocumentPart | OpaquePart] = []
    for i, block in enumerate(value):
        where = f"{path}[{i}]"
        block = as_object(block, where)
        kind = block.get("type")
        if kind == "text":
            out.append(_text(block, where))
        elif kind == "image":
            out.append(_image(block, where))
        elif kind in ("document", "search_result"):
            out.append(decode_document(block, where))
        elif kind in mapping.ANTHROPIC_OPAQUE_BLOCKS:
            out.append(OpaquePart("anthropic", block))
        else:
            raise invalid(f"{where}.type", "must be 'text', 'image', 'document' or 'search_result'")
    return out


def _block(block: dict[str, Any], role: str, where: str) -> Part:
    kind = block.get("type")
    if kind == "text":
        return _text(block, where)
    if kind == "image" and role == "user":
        return _image(block, where)
    if kind in ("document", "search_result") and role == "user":
        return decode_document(block, where)
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
    if kind in mapping.ANTHROPIC_OPAQUE_BLOCKS:
        return OpaquePart("anthropic", block)  # redacted_thinking, server-tool blocks
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


def _decode_tools(value: Any) -> tuple[list[Tool], list[dict[str, Any]]]:
    """Custom tools, and server tools (`web_search_*`, code execution, …) kept verbatim."""
    if not isinstance(value, list):
        raise invalid("tools", "must be an array")
    tools, native = [], []
    for i, item in enumerate(value):
        where = f"tools[{i}]"
        item = as_object(item, where)
        if item.get("type", "custom") != "custom":
            if not isinstance(item.get("type"), str):
                raise invalid(f"{where}.type", "must be a string")
            native.append(item)
            continue
        tools.append(
            Tool(
                name=req(item, "name", str, where),
                description=opt(item, "description", str, where),
                parameters=req(item, "input_schema", dict, where),
                cache_control=_cache(item, where),
                strict=opt(item, "strict", bool, where),
            )
        )
    return tools, native


def _output_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """`output_config.format` (or the beta `output_format`) as an OpenAI-style
    `response_format`, so the structured-output stage validates it like any other."""
    config = opt(body, "output_config", dict, "")
    where = "output_config.format"
    fmt = opt(config, "format", dict, "output_config") if config else None
    if fmt is None:
        fmt, where = opt(body, "output_format", dict, ""), "output_format"
    if fmt is None:
        return None
    if fmt.get("type") != "json_schema":
        raise invalid(f"{where}.type", "must be 'json_schema'")
    schema = req(fmt, "schema", dict, where)
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


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
    tools, native_tools = _decode_tools(body["tools"]) if body.get("tools") else ([], [])
    extras = {k: v for k, v in body.items() if k not in _NEUTRAL_KEYS}
    response_format = _output_format(body)
    if response_format is not None and isinstance(extras.get("output_config"), dict):
        rest = {k: v for k, v in extras["output_config"].items() if k != "format"}
        if rest:
            extras["output_config"] = rest
        else:
            del extras["output_config"]
    return ChatRequest(
        model=model,
        messages=messages,
        system=_decode_system(body.get("system")),
        tools=tools,
        native_tools=native_tools,
        response_format=response_format,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel,
        max_tokens=max_tokens,
        temperature=opt_number(body, "temperature", "", 0.0, 1.0),
        top_p=opt_number(body, "top_p", "", 0.0, 1.0),
        top_k=opt_positive_int(body, "top_k", ""),
        stop=string_list(body.get("stop_sequences"), "stop_sequences"),
        stream=bool(opt(body, "stream", bool, "")),
        extras=extras,
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


class _Target:
    """Who the body is for, to name them in a refusal."""

    __slots__ = ("model", "req")

    def __init__(self, req: ChatRequest | None, model: str) -> None:
        self.req, self.model = req, model

    def refuse(self, what: str) -> Exception:
        req = self.req or ChatRequest(model=self.model, messages=[])
        return mapping.refusal(what, req, self.model, "anthropic")


def _encode_text(part: TextPart) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": part.text}
    if part.citations:
        block["citations"] = part.citations
    return _with_cache(block, part.cache_control)


def _encode_part(part: Part, to: _Target) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        return _encode_text(part)
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
        content: Any = [_encode_part(p, to) for p in part.content]
        if (
            len(part.content) == 1
            and isinstance(part.content[0], TextPart)
            and part.content[0].cache_control is None
            and not part.content[0].citations
        ):
            content = part.content[0].text
        block = {"type": "tool_result", "tool_use_id": part.tool_call_id, "content": content}
        if part.is_error:
            block["is_error"] = True
        return _with_cache(block, part.cache_control)
    if isinstance(part, DocumentPart):
        return encode_document(part, to.refuse)
    if isinstance(part, AudioPart):
        raise to.refuse(f"an 'input_audio' part ({part.format})")
    if isinstance(part, OpaquePart):
        if part.wire == "anthropic":
            return part.block
        raise to.refuse(f"a {part.kind!r} content part")
    if part.signature is None:
        return None  # thinking without a signature cannot be replayed to Anthropic
    return {"type": "thinking", "thinking": part.thinking, "signature": part.signature}


def _simple_text(parts: list[Part]) -> str | None:
    if (
        len(parts) == 1
        and isinstance(parts[0], TextPart)
        and parts[0].cache_control is None
        and not parts[0].citations
    ):
        return parts[0].text
    return None


def encode_messages(
    messages: list[Message], req: ChatRequest | None = None, model: str = ""
) -> list[dict[str, Any]]:
    to = _Target(req, model)
    out: list[dict[str, Any]] = []
    pending_results: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role == "tool":
            pending_results.extend(b for p in msg.parts if (b := _encode_part(p, to)) is not None)
            continue
        blocks = [b for p in msg.parts if (b := _encode_part(p, to)) is not None]
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


def _encode_tool(t: Tool) -> dict[str, Any]:
    tool: dict[str, Any] = {"name": t.name}
    if t.description:
        tool["description"] = t.description
    tool["input_schema"] = t.parameters
    if t.strict is not None:
        tool["strict"] = t.strict
    return _with_cache(tool, t.cache_control)


def _native_tools(req: ChatRequest, model: str, same_wire: bool) -> list[dict[str, Any]]:
    """Server tools: the caller's own when it spoke Anthropic; OpenAI `web_search_options`
    becomes the web search tool; other OpenAI tool kinds are refused."""
    if same_wire:
        return list(req.native_tools)
    out = []
    if "web_search_options" in req.extras:
        out.append(mapping.anthropic_web_search(req.extras["web_search_options"]))
    for tool in req.native_tools:
        raise mapping.refusal(f"the {tool.get('type')!r} tool", req, model, "anthropic")
    return out


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
        "messages": encode_messages(req.messages, req, model),
    }
    system = list(req.system)
    # An Anthropic caller's `output_config.format` goes upstream as it was sent.
    native = _native_format(req) if structured_output == "native" or same_wire else None
    if native is not None:
        config = req.extras.get("output_config") if same_wire else None
        body["output_config"] = {**(config if isinstance(config, dict) else {}), "format": native}
    elif (instruction := schema_instruction(req)) is not None:
        system.append(TextPart(instruction))
    if system:
        simple = _simple_text(list(system))
        body["system"] = (
            simple
            if simple is not None
            else [_with_cache({"type": "text", "text": p.text}, p.cache_control) for p in system]
        )
    tools = [_encode_tool(t) for t in req.tools] + _native_tools(req, model, same_wire)
    if tools:
        body["tools"] = tools
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
