"""OpenAI Chat Completions request ⇄ neutral `ChatRequest`.

`decode_request` validates an untrusted client body (400s name the field);
`encode_request` builds the body Sluice sends to an OpenAI-compatible upstream.

Lossy by design (documented in README): `developer` messages become system text; system
messages later in the conversation are hoisted to the front; `cache_control`, thinking
parts and tool-result images/error flags have no OpenAI form and are dropped on encode.
Documents, files and audio follow `wire/mapping.py`: mapped where OpenAI has a form,
refused with a 400 naming the part and the model where it has none.
"""

from __future__ import annotations

from typing import Any

from sluice.types import (
    AudioPart,
    CallMeta,
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    OpaquePart,
    Part,
    ResultContent,
    TextPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from sluice.wire import mapping
from sluice.wire.fields import (
    as_object,
    invalid,
    opt,
    opt_number,
    opt_positive_int,
    req,
    string_list,
)

# Body keys with a neutral meaning; every other key is kept in `extras`.
_NEUTRAL_KEYS = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "seed",
        "stream",
        "stream_options",
        "n",
        "user",
        "metadata",
    }
)


# --- decode (client → neutral) ---------------------------------------------------------


def _text_parts(content: Any, path: str) -> list[TextPart]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise invalid(path, "must be a string or an array of text parts")
    parts = []
    for i, item in enumerate(content):
        item = as_object(item, f"{path}[{i}]")
        kind = item.get("type")
        if kind not in ("text", "refusal"):
            raise invalid(f"{path}[{i}].type", "must be 'text' here")
        key = "text" if kind == "text" else "refusal"
        parts.append(TextPart(req(item, key, str, f"{path}[{i}]")))
    return parts


def _user_parts(content: Any, path: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list) or not content:
        raise invalid(path, "must be a string or a non-empty array of content parts")
    parts: list[Part] = []
    for i, item in enumerate(content):
        where = f"{path}[{i}]"
        item = as_object(item, where)
        kind = item.get("type")
        if kind == "text":
            parts.append(TextPart(req(item, "text", str, where)))
        elif kind == "image_url":
            image = as_object(item.get("image_url"), f"{where}.image_url")
            parts.append(
                ImagePart(
                    url=req(image, "url", str, f"{where}.image_url"),
                    detail=opt(image, "detail", str, f"{where}.image_url"),
                )
            )
        elif kind == "file":
            parts.append(_file(item, where))
        elif kind == "input_audio":
            audio = as_object(item.get("input_audio"), f"{where}.input_audio")
            data = req(audio, "data", str, f"{where}.input_audio")
            fmt = req(audio, "format", str, f"{where}.input_audio")
            parts.append(AudioPart(data, fmt, raw=item, wire="openai"))
        else:
            raise invalid(f"{where}.type", f"unsupported content part type {kind!r}")
    return parts


def _file(item: dict[str, Any], where: str) -> DocumentPart:
    spec = as_object(item.get("file"), f"{where}.file")
    file_data = opt(spec, "file_data", str, f"{where}.file")
    file_id = opt(spec, "file_id", str, f"{where}.file")
    if file_data is None and file_id is None:
        raise invalid(f"{where}.file", "needs file_data or file_id")
    media, data = None, file_data
    if file_data is not None and file_data.startswith("data:") and ";base64," in file_data:
        media, data = file_data[5:].split(";base64,", 1)
    return DocumentPart(
        "file",
        media_type=media,
        data=data,
        file_id=file_id,
        filename=opt(spec, "filename", str, f"{where}.file"),
        raw=item,
        wire="openai",
    )


def _tool_calls(value: Any, path: str) -> list[Part]:
    if not isinstance(value, list):
        raise invalid(path, "must be an array")
    calls: list[Part] = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        item = as_object(item, where)
        fn = as_object(item.get("function"), f"{where}.function")
        calls.append(
            ToolCallPart(
                id=req(item, "id", str, where),
                name=req(fn, "name", str, f"{where}.function"),
                arguments=opt(fn, "arguments", str, f"{where}.function") or "",
            )
        )
    return calls


def _decode_message(raw: Any, i: int, system: list[TextPart]) -> Message | None:
    path = f"messages[{i}]"
    msg = as_object(raw, path)
    role = msg.get("role")
    name = opt(msg, "name", str, path)
    if role in ("system", "developer"):
        system.extend(_text_parts(msg.get("content"), f"{path}.content"))
        return None
    if role == "user":
        return Message("user", _user_parts(msg.get("content"), f"{path}.content"), name)
    if role == "assistant":
        parts: list[Part] = []
        content = msg.get("content")
        calls = msg.get("tool_calls")
        if content is None and not calls:
            raise invalid(f"{path}.content", "an assistant message needs content or tool_calls")
        if content is not None and not (content == "" and calls):
            parts.extend(_text_parts(content, f"{path}.content"))
        if calls:
            parts.extend(_tool_calls(calls, f"{path}.tool_calls"))
        return Message("assistant", parts, name)
    if role == "tool":
        call_id = req(msg, "tool_call_id", str, path)
        result: list[ResultContent] = list(_text_parts(msg.get("content", ""), f"{path}.content"))
        return Message("tool", [ToolResultPart(call_id, result)])
    raise invalid(
        f"{path}.role", "must be one of 'system', 'developer', 'user', 'assistant', 'tool'"
    )


def _decode_tools(value: Any) -> tuple[list[Tool], list[dict[str, Any]]]:
    """Function tools, and the other kinds (`custom`, …) kept verbatim."""
    if not isinstance(value, list):
        raise invalid("tools", "must be an array")
    tools, native = [], []
    for i, item in enumerate(value):
        where = f"tools[{i}]"
        item = as_object(item, where)
        if item.get("type", "function") != "function":
            if not isinstance(item.get("type"), str):
                raise invalid(f"{where}.type", "must be a string")
            native.append(item)
            continue
        fn = as_object(item.get("function"), f"{where}.function")
        params = fn.get("parameters")
        tools.append(
            Tool(
                name=req(fn, "name", str, f"{where}.function"),
                description=opt(fn, "description", str, f"{where}.function"),
                parameters=as_object(params, f"{where}.function.parameters")
                if params is not None
                else {"type": "object", "properties": {}},
                strict=opt(fn, "strict", bool, f"{where}.function"),
            )
        )
    return tools, native


def _decode_tool_choice(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return ToolChoice(value)
    if isinstance(value, dict) and value.get("type") == "function":
        fn = as_object(value.get("function"), "tool_choice.function")
        return ToolChoice("tool", req(fn, "name", str, "tool_choice.function"))
    raise invalid(
        "tool_choice",
        "must be 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}",
    )


def decode_request(body: dict[str, Any], meta: CallMeta) -> ChatRequest:
    model = req(body, "model", str, "")
    raw_messages = req(body, "messages", list, "")
    if not raw_messages:
        raise invalid("messages", "must contain at least one message")
    system: list[TextPart] = []
    messages = []
    for i, raw in enumerate(raw_messages):
        message = _decode_message(raw, i, system)
        if message is not None:
            messages.append(message)
    if not messages:
        raise invalid("messages", "must contain at least one non-system message")

    n = opt(body, "n", int, "")
    if n is not None and n != 1:
        raise invalid("n", "only n=1 is supported; send several requests instead")
    stream_options = opt(body, "stream_options", dict, "") or {}
    metadata = opt(body, "metadata", dict, "") or {}
    meta.user = opt(body, "user", str, "")
    meta.metadata = metadata
    meta.include_usage = bool(stream_options.get("include_usage"))
    max_tokens = opt_positive_int(body, "max_completion_tokens", "")
    if max_tokens is not None:
        meta.max_tokens_field = "max_completion_tokens"
    else:
        max_tokens = opt_positive_int(body, "max_tokens", "")
    tools, native_tools = _decode_tools(body["tools"]) if body.get("tools") else ([], [])
    return ChatRequest(
        model=model,
        messages=messages,
        system=system,
        tools=tools,
        native_tools=native_tools,
        tool_choice=_decode_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=opt(body, "parallel_tool_calls", bool, ""),
        response_format=opt(body, "response_format", dict, ""),
        max_tokens=max_tokens,
        temperature=opt_number(body, "temperature", "", 0.0, 2.0),
        top_p=opt_number(body, "top_p", "", 0.0, 1.0),
        top_k=opt_positive_int(body, "top_k", ""),
        stop=string_list(body.get("stop"), "stop", max_items=4),
        seed=opt(body, "seed", int, ""),
        stream=bool(opt(body, "stream", bool, "")),
        extras={k: v for k, v in body.items() if k not in _NEUTRAL_KEYS},
        meta=meta,
    )


# --- encode (neutral → upstream) -------------------------------------------------------


def _content(parts: list[TextPart]) -> str | list[dict[str, Any]]:
    if len(parts) == 1:
        return parts[0].text
    return [{"type": "text", "text": p.text} for p in parts]


class _Target:
    """Who the body is for, to name them in a refusal."""

    __slots__ = ("model", "req")

    def __init__(self, req: ChatRequest, model: str) -> None:
        self.req, self.model = req, model

    def refuse(self, what: str) -> Exception:
        return mapping.refusal(what, self.req, self.model, "openai")


def _document(part: DocumentPart, to: _Target) -> dict[str, Any]:
    if part.wire == "openai" and part.raw is not None:
        return part.raw
    if (url := mapping.pdf_data_url(part)) is not None:
        name = part.filename or part.title or "document.pdf"
        return {"type": "file", "file": {"file_data": url, "filename": name}}
    if (text := mapping.document_text(part)) is not None:
        return {"type": "text", "text": text}
    raise to.refuse(mapping.describe(part))


def _user_part(p: Part, to: _Target) -> dict[str, Any] | None:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text}
    if isinstance(p, ImagePart):
        image: dict[str, Any] = {"url": p.url}
        if p.detail is not None:
            image["detail"] = p.detail
        return {"type": "image_url", "image_url": image}
    if isinstance(p, DocumentPart):
        return _document(p, to)
    if isinstance(p, AudioPart):
        if p.raw is not None:
            return p.raw
        return {"type": "input_audio", "input_audio": {"data": p.data, "format": p.format}}
    if isinstance(p, OpaquePart):
        if p.wire == "openai":
            return p.block
        if p.kind in mapping.DROPPED_FOR_OPENAI:
            return None
        raise to.refuse(f"a {p.kind!r} content block")
    return None


def _encode_user(msg: Message, to: _Target) -> dict[str, Any]:
    if all(isinstance(p, TextPart) for p in msg.parts) and len(msg.parts) == 1:
        content: Any = msg.parts[0].text  # type: ignore[union-attr]
    else:
        content = [b for p in msg.parts if (b := _user_part(p, to)) is not None]
    out: dict[str, Any] = {"role": "user", "content": content}
    if msg.name is not None:
        out["name"] = msg.name
    return out


def _encode_assistant(msg: Message, to: _Target) -> dict[str, Any]:
    texts = [p for p in msg.parts if isinstance(p, TextPart)]
    calls = [p for p in msg.parts if isinstance(p, ToolCallPart)]
    for p in msg.parts:
        if isinstance(p, OpaquePart) and p.kind not in mapping.DROPPED_FOR_OPENAI:
            raise to.refuse(f"a {p.kind!r} block in an assistant message")
    # OpenAI needs content or tool_calls; a thinking-only turn from Anthropic becomes "".
    content = _content(texts) if texts else (None if calls else "")
    out: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        out["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in calls
        ]
    if msg.name is not None:
        out["name"] = msg.name
    return out


def _result_texts(part: ToolResultPart, to: _Target) -> list[TextPart]:
    """A tool message holds text only: documents become text where they can."""
    texts = []
    for p in part.content:
        if isinstance(p, TextPart):
            texts.append(p)
        elif isinstance(p, DocumentPart):
            text = mapping.document_text(p)
            if text is None:
                raise to.refuse(f"{mapping.describe(p)} inside a tool result")
            texts.append(TextPart(text))
        elif isinstance(p, OpaquePart):
            raise to.refuse(f"a {p.kind!r} block inside a tool result")
    return texts


def encode_messages(req: ChatRequest, model: str | None = None) -> list[dict[str, Any]]:
    to = _Target(req, model or req.model)
    out: list[dict[str, Any]] = []
    if req.system:
        out.append({"role": "system", "content": _content(req.system)})
    for msg in req.messages:
        if msg.role == "user":
            out.append(_encode_user(msg, to))
        elif msg.role == "assistant":
            out.append(_encode_assistant(msg, to))
        else:
            for part in msg.parts:
                if isinstance(part, ToolResultPart):
                    texts = _result_texts(part, to)
                    out.append(
                        {
                            "role": "tool",
                            "tool_call_id": part.tool_call_id,
                            "content": _content(texts) if texts else "",
                        }
                    )
    return out


def _encode_tool(t: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": t.name}
    if t.description is not None:
        fn["description"] = t.description
    fn["parameters"] = t.parameters
    if t.strict is not None:
        fn["strict"] = t.strict
    return {"type": "function", "function": fn}


def encode_tool_choice(choice: ToolChoice) -> Any:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def encode_request(
    req: ChatRequest,
    model: str,
    *,
    max_tokens_param: str = "max_tokens",
    same_wire: bool = True,
    send_stop: bool = True,
) -> dict[str, Any]:
    """The upstream body. `same_wire`: the client spoke OpenAI, so its extras pass through."""
    body: dict[str, Any] = {"model": model, "messages": encode_messages(req, model)}
    tools = [_encode_tool(t) for t in req.tools]
    for native in req.native_tools:
        if same_wire:
            tools.append(native)
        elif mapping.is_web_search(native):
            body["web_search_options"] = mapping.openai_web_search(native)
        else:
            raise mapping.refusal(f"the {native.get('type')!r} server tool", req, model, "openai")
    if tools:
        body["tools"] = tools
    if req.tool_choice is not None:
        body["tool_choice"] = encode_tool_choice(req.tool_choice)
    optional = {
        "parallel_tool_calls": req.parallel_tool_calls,
        "response_format": req.response_format,
        max_tokens_param: req.max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "top_k": req.top_k,
        "seed": req.seed,
        "user": req.meta.user,
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    if req.stop and send_stop:
        body["stop"] = req.stop
    if req.stream:
        body["stream"] = True
        # Always ask for usage: cost tracking must not depend on the client asking.
        body["stream_options"] = {"include_usage": True}
    if same_wire and req.extras:
        for key, value in req.extras.items():
            body.setdefault(key, value)
        if req.extras.get("store") and req.meta.metadata:
            body["metadata"] = req.meta.metadata  # stored completions carry the caller's tags
    return body
