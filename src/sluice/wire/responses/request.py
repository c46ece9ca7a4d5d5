"""OpenAI Responses API request (`POST /v1/responses`) → neutral `ChatRequest`.

The Responses API says in items what Chat Completions says in messages: `input` is a string
or a list of items (messages with `input_text`/`input_image` parts, earlier `output_text`
answers, `function_call` and `function_call_output` items), `instructions` is the system
text, tools are flat (`{"type": "function", "name": ...}`) and `text.format` is the
structured-output request. `decode_request` turns one body, plus the items of the stored
conversation it continues (`previous_response_id`), into the neutral request every stage
and provider already understands; `ResponsesParams` keeps what the answer must echo.

Lossy by design (README, "Responses API"): only function tools; `reasoning` items of a
stored conversation are skipped; `strict` is echoed but not enforced upstream (the neutral
`Tool` has no such flag); `input_file` and `item_reference` are refused with a 400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sluice.types import (
    CallMeta,
    ChatRequest,
    ImagePart,
    Message,
    Part,
    ResultContent,
    TextPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)
from sluice.wire.fields import as_object, invalid, opt, opt_number, opt_positive_int, req

MAX_METADATA_KEYS = 16  # OpenAI's limits: 16 pairs, keys <= 64 chars, values <= 512
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
# Parameters that change what is asked and that Sluice cannot honour: refused, not ignored.
_REFUSED = {
    "background": "background responses are not supported; send the request and wait",
    "conversation": "conversations are not supported; use previous_response_id",
    "prompt": "stored prompt templates are not supported; send the input itself",
}


@dataclass(slots=True)
class ResponsesParams:
    """What a Responses answer echoes of its request (the SDK's `Response` has these)."""

    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    parallel_tool_calls: bool = True
    metadata: dict[str, str] = field(default_factory=dict)
    store: bool = True
    previous_response_id: str | None = None
    user: str | None = None
    stream: bool = False
    input_items: list[dict[str, Any]] = field(default_factory=list)  # this call's, normalised


# --- items → messages ------------------------------------------------------------------


def _content_parts(content: Any, role: str, path: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise invalid(path, "must be a string or an array of content parts")
    parts: list[Part] = []
    for i, raw in enumerate(content):
        where = f"{path}[{i}]"
        item = as_object(raw, where)
        kind = item.get("type")
        if kind in ("input_text", "output_text", "text"):
            parts.append(TextPart(req(item, "text", str, where)))
        elif kind == "refusal":
            parts.append(TextPart(req(item, "refusal", str, where)))
        elif kind == "input_image" and role == "user":
            url = opt(item, "image_url", str, where)
            if url is None:
                raise invalid(
                    f"{where}.image_url", "is required (file_id images are not supported)"
                )
            detail = opt(item, "detail", str, where)
            parts.append(ImagePart(url, None if detail == "auto" else detail))
        else:
            raise invalid(f"{where}.type", f"unsupported content part type {kind!r} for {role}")
    return parts


def _output_text(output: Any, path: str) -> list[ResultContent]:
    """A `function_call_output.output`: a string, or input_text/input_image parts."""
    if isinstance(output, str):
        return [TextPart(output)]
    parts = _content_parts(output, "user", path)
    return [p for p in parts if isinstance(p, TextPart | ImagePart)]


class _Conversation:
    """Messages built item by item: consecutive function calls join the assistant turn
    before them, as one Chat Completions assistant message carries several tool calls."""

    def __init__(self) -> None:
        self.system: list[TextPart] = []
        self.messages: list[Message] = []

    def _assistant(self) -> Message:
        last = self.messages[-1] if self.messages else None
        if last is None or last.role != "assistant":
            last = Message("assistant", [])
            self.messages.append(last)
        return last

    def add(self, raw: Any, path: str) -> None:
        item = as_object(raw, path)
        kind = item.get("type", "message")
        if kind == "message":
            self._message(item, path)
        elif kind == "function_call":
            name = req(item, "name", str, path)
            call = ToolCallPart(
                req(item, "call_id", str, path), name, req(item, "arguments", str, path)
            )
            self._assistant().parts.append(call)
        elif kind == "function_call_output":
            result = ToolResultPart(
                req(item, "call_id", str, path),
                _output_text(item.get("output", ""), f"{path}.output"),
            )
            self.messages.append(Message("tool", [result]))
        elif kind == "reasoning":
            return  # a reasoning model's summary: nothing a neutral request can carry
        else:
            raise invalid(f"{path}.type", f"unsupported input item type {kind!r}")

    def _message(self, item: dict[str, Any], path: str) -> None:
        role = item.get("role")
        if role in ("system", "developer"):
            parts = _content_parts(item.get("content"), "system", f"{path}.content")
            self.system.extend(p for p in parts if isinstance(p, TextPart))
        elif role == "user":
            content = item.get("content")
            if content in (None, "", []):
                raise invalid(f"{path}.content", "must not be empty")
            self.messages.append(
                Message("user", _content_parts(content, "user", f"{path}.content"))
            )
        elif role == "assistant":
            parts = _content_parts(item.get("content"), "assistant", f"{path}.content")
            self._assistant().parts.extend(parts)
        else:
            raise invalid(
                f"{path}.role", "must be one of 'user', 'assistant', 'system', 'developer'"
            )


def normalise_input(value: Any) -> list[dict[str, Any]]:
    """`input` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise invalid("input", "must be a string or a non-empty array of input items")
    return [as_object(item, f"input[{i}]") for i, item in enumerate(value)]


# --- tools, formats, metadata -----------------------------------------------------------


def _tools(value: Any) -> tuple[list[Tool], list[dict[str, Any]]]:
    """Neutral tools and their echo (with `strict`, default true as OpenAI's)."""
    if value is None:
        return [], []
    if not isinstance(value, list):
        raise invalid("tools", "must be an array")
    tools, echo = [], []
    for i, raw in enumerate(value):
        where = f"tools[{i}]"
        item = as_object(raw, where)
        if item.get("type") == "file_search":  # served by Sluice itself (sluice.retrieval)
            echo.append(_file_search(item, where))
            continue
        if item.get("type") != "function":
            raise invalid(f"{where}.type", "only 'function' and 'file_search' tools are supported")
        params = item.get("parameters")
        schema = as_object(params, f"{where}.parameters") if params is not None else None
        tool = Tool(
            name=req(item, "name", str, where),
            description=opt(item, "description", str, where),
            parameters=schema if schema is not None else {"type": "object", "properties": {}},
            # What the caller said explicitly goes upstream; the Responses default (true) is
            # echoed but not forced on a Chat Completions or Messages upstream.
            strict=opt(item, "strict", bool, where),
        )
        strict = tool.strict
        tools.append(tool)
        echo.append(
            {
                "type": "function",
                "name": tool.name,
                "description": tool.description,
                "parameters": schema,
                "strict": True if strict is None else strict,
            }
        )
    return tools, echo


RETRIEVAL_HEADER = "x-sluice-retrieval"  # read by sluice.retrieval's grounding stage


def _file_search(item: dict[str, Any], where: str) -> dict[str, Any]:
    """A `file_search` tool: Sluice retrieves from these vector stores before the model is
    called (the grounding stage); the tool itself never goes upstream."""
    ids = item.get("vector_store_ids")
    if (
        not isinstance(ids, list)
        or not 1 <= len(ids) <= 10
        or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids)
    ):
        raise invalid(f"{where}.vector_store_ids", "must list 1-10 vector store ids")
    limit = item.get("max_num_results")
    if limit is not None and (
        not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 50
    ):
        raise invalid(f"{where}.max_num_results", "must be an integer from 1 to 50")
    spec: dict[str, Any] = {"type": "file_search", "vector_store_ids": ids}
    for key in ("max_num_results", "filters", "ranking_options"):
        if item.get(key) is not None:
            spec[key] = item[key]
    return spec


def _file_search_spec(value: Any) -> str | None:
    """The file_search tool as the grounding stage's header value (JSON), if any."""
    if not isinstance(value, list):
        return None
    for i, raw in enumerate(value):
        if isinstance(raw, dict) and raw.get("type") == "file_search":
            spec = {**_file_search(raw, f"tools[{i}]"), "source": "file_search"}
            spec.pop("type")
            return json.dumps(spec, separators=(",", ":"))
    return None


def _tool_choice(value: Any) -> ToolChoice | None:
    if value is None:
        return None
    if value in ("auto", "none", "required"):
        return ToolChoice(value)
    if isinstance(value, dict) and value.get("type") == "function":
        return ToolChoice("tool", req(value, "name", str, "tool_choice"))
    raise invalid(
        "tool_choice", "must be 'auto', 'none', 'required' or {'type': 'function', 'name': ...}"
    )


def response_format(text: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """`text.format` → the neutral (Chat Completions) `response_format`, and its echo."""
    if text is None:
        return None, {"type": "text"}
    fmt = as_object(text, "text").get("format")
    if fmt is None:
        return None, {"type": "text"}
    fmt = as_object(fmt, "text.format")
    kind = fmt.get("type")
    if kind == "text":
        return None, {"type": "text"}
    if kind == "json_object":
        return {"type": "json_object"}, {"type": "json_object"}
    if kind == "json_schema":
        name = req(fmt, "name", str, "text.format")
        schema = as_object(fmt.get("schema"), "text.format.schema")
        spec: dict[str, Any] = {"name": name, "schema": schema}
        strict = opt(fmt, "strict", bool, "text.format")
        if strict is not None:
            spec["strict"] = strict
        description = opt(fmt, "description", str, "text.format")
        if description is not None:
            spec["description"] = description
        echo = {"type": "json_schema", **spec, "strict": bool(strict)}
        return {"type": "json_schema", "json_schema": spec}, echo
    raise invalid("text.format.type", "must be 'text', 'json_object' or 'json_schema'")


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    meta = as_object(value, "metadata")
    if len(meta) > MAX_METADATA_KEYS:
        raise invalid("metadata", f"may have at most {MAX_METADATA_KEYS} keys")
    for key, item in meta.items():
        if len(key) > MAX_METADATA_KEY:
            raise invalid("metadata", f"keys may be at most {MAX_METADATA_KEY} characters")
        if not isinstance(item, str) or len(item) > MAX_METADATA_VALUE:
            raise invalid(
                f"metadata.{key}", f"must be a string of at most {MAX_METADATA_VALUE} characters"
            )
    return dict(meta)


# --- the body ---------------------------------------------------------------------------


def decode_params(body: dict[str, Any]) -> ResponsesParams:
    """Validate everything but the conversation; what the answer echoes."""
    for key, why in _REFUSED.items():
        if body.get(key):
            raise invalid(key, why)
    _, tools = _tools(body.get("tools"))
    _, text_format = response_format(body.get("text"))
    _tool_choice(body.get("tool_choice"))
    parallel = opt(body, "parallel_tool_calls", bool, "")
    store = opt(body, "store", bool, "")
    return ResponsesParams(
        instructions=opt(body, "instructions", str, ""),
        tools=tools,
        tool_choice=body.get("tool_choice") or "auto",
        text_format=text_format,
        max_output_tokens=opt_positive_int(body, "max_output_tokens", ""),
        temperature=opt_number(body, "temperature", "", 0.0, 2.0),
        top_p=opt_number(body, "top_p", "", 0.0, 1.0),
        parallel_tool_calls=True if parallel is None else parallel,
        metadata=_metadata(body.get("metadata")),
        store=True if store is None else store,
        previous_response_id=opt(body, "previous_response_id", str, ""),
        user=opt(body, "safety_identifier", str, "") or opt(body, "user", str, ""),
        stream=bool(opt(body, "stream", bool, "")),
        input_items=normalise_input(body.get("input")),
    )


def decode_request(
    body: dict[str, Any], meta: CallMeta, params: ResponsesParams, history: list[dict[str, Any]]
) -> ChatRequest:
    """The neutral request: stored `history` items first, then this call's input."""
    model = req(body, "model", str, "")
    conversation = _Conversation()
    if params.instructions:
        conversation.system.append(TextPart(params.instructions))
    for i, item in enumerate(history):
        conversation.add(item, f"previous_response_id (stored item {i})")
    for i, item in enumerate(params.input_items):
        conversation.add(item, f"input[{i}]")
    messages = [m for m in conversation.messages if m.parts]
    if not any(m.role != "assistant" for m in messages):
        raise invalid("input", "must contain at least one user message or function_call_output")
    tools, _ = _tools(body.get("tools"))
    fmt, _ = response_format(body.get("text"))
    meta.user = params.user
    meta.metadata = dict(params.metadata)
    file_search = _file_search_spec(body.get("tools"))
    if file_search is not None:
        meta.headers = {**meta.headers, RETRIEVAL_HEADER: file_search}
    return ChatRequest(
        model=model,
        messages=messages,
        system=conversation.system,
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice")),
        parallel_tool_calls=opt(body, "parallel_tool_calls", bool, ""),
        response_format=fmt,
        max_tokens=params.max_output_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        stream=params.stream,
        meta=meta,
    )
