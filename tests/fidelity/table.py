"""The fidelity matrix: ONE table of what each API field becomes on its way through Sluice.

A row is one request field / content part / header (sent by a client of `api`), or one
response / stream field (sent by an upstream of `api`). `test_matrix.py` sends every row
through a real gateway to a capturing upstream twice: to the same API (the value must arrive
as sent, `same`) and to the other API (`cross`: the documented mapping, a documented drop,
or a 400 naming the part and the model). README's "Translation notes" are rendered from the
`note` of every row (`render_notes`, checked by `test_readme.py`; `python -m
tests.fidelity.table` rewrites the section). A new field is one row.

Field names follow the providers' API references (OpenAI Chat Completions create/object/
chunk; Anthropic Messages create/response/streaming, content blocks, server tools).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Api = Literal["openai", "anthropic"]
Where = Literal["request", "header", "response", "stream"]

PDF = "JVBERi0xLjQKJcfsj6IK"  # base64 of a PDF header: enough for a wire test
PNG = "iVBORw0KGgo="
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
OPENAI_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather", "parameters": SCHEMA},
}
ANTHROPIC_TOOL = {"name": "get_weather", "description": "Weather", "input_schema": SCHEMA}


@dataclass(frozen=True)
class Kept:
    """Arrives unchanged at `path` (default: where it was sent)."""

    path: str = ""
    sent_at: str = ""


@dataclass(frozen=True)
class Mapped:
    """Arrives as `value` at `path`."""

    path: str
    value: Any


@dataclass(frozen=True)
class Present:
    """Arrives at `path` with a non-empty, non-zero value (counts known only at run time)."""

    path: str


@dataclass(frozen=True)
class Absent:
    """Does not arrive at `path` (a documented drop)."""

    path: str


@dataclass(frozen=True)
class Refused:
    """The call is refused with a 400 whose message contains `names` and the model."""

    names: str


Expect = Kept | Mapped | Present | Absent | Refused


@dataclass(frozen=True)
class Row:
    api: Api
    where: Where
    field: str  # as the API reference names it
    send: Any  # request: body fields; header: headers; response: answer patch; stream: events
    same: Expect
    cross: Expect
    note: str  # what happens crossing to the other API (README)
    id: str = ""


def _user(*parts: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


def _oa(field_: str, send: Any, cross: Expect, note: str, same: Expect | None = None) -> Row:
    return Row("openai", "request", field_, send, same or Kept(), cross, note)


def _an(field_: str, send: Any, cross: Expect, note: str, same: Expect | None = None) -> Row:
    return Row("anthropic", "request", field_, send, same or Kept(), cross, note)


ANTHROPIC_HISTORY_TAIL = [{"role": "user", "content": "and now?"}]

OPENAI_REQUEST = [
    _oa(
        "temperature",
        {"temperature": 0.5},
        Mapped("temperature", 0.5),
        "`temperature` (values above 1 clamped to 1)",
    ),
    _oa("top_p", {"top_p": 0.9}, Mapped("top_p", 0.9), "`top_p`"),
    _oa("stop", {"stop": ["END"]}, Mapped("stop_sequences", ["END"]), "`stop_sequences`"),
    _oa("max_tokens", {"max_tokens": 77}, Mapped("max_tokens", 77), "`max_tokens`"),
    _oa(
        "max_completion_tokens",
        {"max_completion_tokens": 77},
        Mapped("max_tokens", 77),
        "`max_tokens` (same-API: the name the caller used;"
        " o-series and gpt-5 always get `max_completion_tokens`)",
    ),
    _oa("user", {"user": "u-1"}, Mapped("metadata.user_id", "u-1"), "`metadata.user_id`"),
    _oa(
        "messages[].role=system",
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]
        },
        Mapped("system", "be brief"),
        "`system`",
    ),
    _oa(
        "messages[].role=developer",
        {
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]
        },
        Mapped("system", "be brief"),
        "`system`",
        Mapped("messages[0].role", "system"),
    ),
    _oa(
        "tools[].function",
        {"tools": [OPENAI_TOOL]},
        Mapped("tools[0]", ANTHROPIC_TOOL),
        "custom tool with `input_schema`",
    ),
    _oa(
        "tools[].function.strict",
        {"tools": [{"type": "function", "function": {**OPENAI_TOOL["function"], "strict": True}}]},  # type: ignore[dict-item]
        Mapped("tools[0].strict", True),
        "`tools[].strict`",
    ),
    _oa(
        "tool_choice",
        {"tools": [OPENAI_TOOL], "tool_choice": "required"},
        Mapped("tool_choice", {"type": "any"}),
        "`tool_choice` (`required` → `any`, named function → `tool`)",
    ),
    _oa(
        "parallel_tool_calls",
        {"tools": [OPENAI_TOOL], "parallel_tool_calls": False},
        Mapped("tool_choice.disable_parallel_tool_use", True),
        "`tool_choice.disable_parallel_tool_use`",
    ),
    _oa(
        "response_format (json_schema)",
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": SCHEMA, "strict": True},
            }
        },
        Mapped("output_config.format", {"type": "json_schema", "schema": SCHEMA}),
        "`output_config.format` (provider `structured_output: native`;"
        " else schema instructions in `system`), answer validated by Sluice",
    ),
    _oa("seed", {"seed": 7}, Absent("seed"), "dropped (no Anthropic form)"),
    _oa(
        "logprobs",
        {"logprobs": True, "top_logprobs": 2},
        Absent("logprobs"),
        "dropped (no Anthropic form)",
    ),
    _oa(
        "frequency_penalty / presence_penalty / logit_bias",
        {"frequency_penalty": 0.5, "presence_penalty": 0.1, "logit_bias": {"50256": -100}},
        Absent("frequency_penalty"),
        "dropped (no Anthropic form)",
    ),
    _oa(
        "reasoning_effort",
        {"reasoning_effort": "low"},
        Absent("reasoning_effort"),
        "dropped (Anthropic `thinking` needs a token budget the caller did not give)",
    ),
    _oa(
        "service_tier",
        {"service_tier": "flex"},
        Absent("service_tier"),
        "dropped (the tiers differ)",
    ),
    _oa(
        "store + metadata",
        {"store": True, "metadata": {"k": "v"}},
        Absent("store"),
        "dropped (no Anthropic form)",
    ),
    _oa(
        "web_search_options",
        {
            "web_search_options": {
                "user_location": {"type": "approximate", "approximate": {"city": "Paris"}}
            }
        },
        Mapped(
            "tools[0]",
            {
                "type": "web_search_20250305",
                "name": "web_search",
                "user_location": {"type": "approximate", "city": "Paris"},
            },
        ),
        "the `web_search_20250305` server tool",
    ),
    _oa(
        "content[].image_url (data URL)",
        {
            "messages": _user(
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
            )
        },
        Mapped(
            "messages[0].content[0].source",
            {"type": "base64", "media_type": "image/png", "data": PNG},
        ),
        "`image` block (base64 or URL source)",
    ),
    _oa(
        "content[].file (file_data PDF)",
        {
            "messages": _user(
                {
                    "type": "file",
                    "file": {
                        "file_data": f"data:application/pdf;base64,{PDF}",
                        "filename": "a.pdf",
                    },
                }
            )
        },
        Mapped(
            "messages[0].content[0]",
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                "title": "a.pdf",
            },
        ),
        "`document` block with a base64 PDF source (`filename` → `title`)",
    ),
    _oa(
        "content[].file (file_id)",
        {"messages": _user({"type": "file", "file": {"file_id": "file-abc"}})},
        Refused("file given by file id"),
        "400 naming the part and the model (file ids are per provider)",
    ),
    _oa(
        "content[].input_audio",
        {
            "messages": _user(
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
            )
        },
        Refused("'input_audio' part"),
        "400 naming the part and the model (Anthropic takes no audio)",
    ),
    _oa(
        "messages[].role=tool",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
            ],
            "tools": [OPENAI_TOOL],
        },
        Mapped(
            "messages[2].content[0]",
            {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        ),
        "`tool_result` block in a user turn (consecutive results merged)",
    ),
]

ANTHROPIC_REQUEST = [
    _an("temperature", {"temperature": 0.5}, Mapped("temperature", 0.5), "`temperature`"),
    _an(
        "top_k",
        {"top_k": 5},
        Mapped("top_k", 5),
        "`top_k` (OpenAI-compatible servers such as vLLM read it)",
    ),
    _an(
        "max_tokens",
        {"max_tokens": 33},
        Mapped("max_tokens", 33),
        "`max_tokens` (`max_completion_tokens` for o-series / gpt-5)",
    ),
    _an("metadata.user_id", {"metadata": {"user_id": "u-1"}}, Mapped("user", "u-1"), "`user`"),
    _an(
        "system",
        {"system": "be brief"},
        Mapped("messages[0]", {"role": "system", "content": "be brief"}),
        "a `system` message first",
    ),
    _an(
        "stop_sequences",
        {"stop_sequences": ["END"]},
        Absent("stop"),
        "applied by Sluice: not sent upstream; the answer is cut at the first match"
        " and `stop_reason: stop_sequence` names it",
    ),
    _an(
        "tools[] (custom)",
        {"tools": [ANTHROPIC_TOOL]},
        Mapped("tools[0]", OPENAI_TOOL),
        "`function` tool",
    ),
    _an(
        "tools[].strict",
        {"tools": [{**ANTHROPIC_TOOL, "strict": True}]},
        Mapped("tools[0].function.strict", True),
        "`tools[].function.strict`",
    ),
    _an(
        "tool_choice",
        {"tools": [ANTHROPIC_TOOL], "tool_choice": {"type": "any"}},
        Mapped("tool_choice", "required"),
        "`tool_choice` (`any` → `required`, `tool` → named function)",
    ),
    _an(
        "tool_choice.disable_parallel_tool_use",
        {
            "tools": [ANTHROPIC_TOOL],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        },
        Mapped("parallel_tool_calls", False),
        "`parallel_tool_calls: false`",
    ),
    _an(
        "output_config.format",
        {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
        Mapped(
            "response_format",
            {"type": "json_schema", "json_schema": {"name": "output", "schema": SCHEMA}},
        ),
        "`response_format` json_schema, answer validated by Sluice",
    ),
    _an(
        "output_config.effort",
        {"output_config": {"effort": "low"}},
        Absent("output_config"),
        "dropped (no OpenAI form)",
    ),
    _an(
        "thinking",
        {"thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 2048},
        Absent("thinking"),
        "dropped (no Chat Completions form)",
    ),
    _an(
        "service_tier",
        {"service_tier": "auto"},
        Absent("service_tier"),
        "dropped (the tiers differ)",
    ),
    _an(
        "tools[] web_search_*",
        {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]},
        Mapped("web_search_options", {}),
        "`web_search_options` (search models)",
    ),
    _an(
        "tools[] code_execution_*",
        {"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]},
        Refused("'code_execution_20250825' server tool"),
        "400 naming the tool and the model",
    ),
    _an(
        "content[].image (base64)",
        {
            "messages": _user(
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                }
            )
        },
        Mapped("messages[0].content[0].image_url.url", f"data:image/png;base64,{PNG}"),
        "`image_url` part (data URL)",
    ),
    _an(
        "content[].document (base64 PDF)",
        {
            "messages": _user(
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                    "title": "a.pdf",
                }
            )
        },
        Mapped(
            "messages[0].content[0]",
            {
                "type": "file",
                "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"},
            },
        ),
        "`file` part with `file_data` (`title` → `filename`)",
    ),
    _an(
        "content[].document (text)",
        {
            "messages": _user(
                {
                    "type": "document",
                    "source": {"type": "text", "media_type": "text/plain", "data": "the text"},
                    "title": "Notes",
                }
            )
        },
        Mapped("messages[0].content[0]", {"type": "text", "text": "Notes\nthe text"}),
        "a text part (title, then the text)",
    ),
    _an(
        "content[].document (URL)",
        {
            "messages": _user(
                {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
            )
        },
        Refused("document given by URL"),
        "400 naming the part and the model (no URL form for files)",
    ),
    _an(
        "content[].document (file)",
        {"messages": _user({"type": "document", "source": {"type": "file", "file_id": "file_1"}})},
        Refused("document given by file id"),
        "400 naming the part and the model (file ids are per provider)",
    ),
    _an(
        "content[].search_result",
        {
            "messages": _user(
                {
                    "type": "search_result",
                    "source": "https://example.com",
                    "title": "Ex",
                    "content": [{"type": "text", "text": "found"}],
                }
            )
        },
        Mapped(
            "messages[0].content[0]", {"type": "text", "text": "Ex\nhttps://example.com\nfound"}
        ),
        "a text part (title, source, content)",
    ),
    _an(
        "tool_result content[].search_result",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [
                                {
                                    "type": "search_result",
                                    "source": "s",
                                    "title": "T",
                                    "content": [{"type": "text", "text": "x"}],
                                }
                            ],
                        }
                    ],
                },
            ],
            "tools": [ANTHROPIC_TOOL],
        },
        Mapped("messages[2].content", "T\ns\nx"),
        "the tool message's text",
    ),
    _an(
        "content[].cache_control",
        {"messages": _user({"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}})},
        Mapped("messages[0].content", "hi"),
        "dropped (OpenAI caches prefixes by itself)",
    ),
    _an(
        "assistant content[].redacted_thinking",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "redacted_thinking", "data": "EmwKAhgB"},
                        {"type": "text", "text": "ok"},
                    ],
                },
                *ANTHROPIC_HISTORY_TAIL,
            ]
        },
        Mapped("messages[1].content", "ok"),
        "dropped, like `thinking` (the answer text stays)",
    ),
    _an(
        "assistant content[].server_tool_use + web_search_tool_result",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "server_tool_use",
                            "id": "srvtoolu_1",
                            "name": "web_search",
                            "input": {"query": "q"},
                        },
                        {
                            "type": "web_search_tool_result",
                            "tool_use_id": "srvtoolu_1",
                            "content": [],
                        },
                        {"type": "text", "text": "ok"},
                    ],
                },
                *ANTHROPIC_HISTORY_TAIL,
            ]
        },
        Mapped("messages[1].content", "ok"),
        "dropped (the model's own server-tool work; the answer text stays)",
    ),
    _an(
        "assistant content[].text.citations",
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "text",
                            "text": "ok",
                            "citations": [
                                {
                                    "type": "web_search_result_location",
                                    "url": "https://e.com",
                                    "title": "E",
                                    "cited_text": "c",
                                    "encrypted_index": "x",
                                }
                            ],
                        }
                    ],
                },
                *ANTHROPIC_HISTORY_TAIL,
            ]
        },
        Mapped("messages[1].content", "ok"),
        "dropped (requests have no citation form in OpenAI)",
    ),
]

HEADERS = [
    Row(
        "anthropic",
        "header",
        "anthropic-beta",
        {"anthropic-beta": "context-1m-2025-08-07"},
        Kept("anthropic-beta"),
        Absent("anthropic-beta"),
        "not sent (it names Anthropic features)",
    ),
]


# --- answers from the upstream -------------------------------------------------------------

OPENAI_ANSWER: dict[str, Any] = {
    "id": "chatcmpl-up1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
}
ANTHROPIC_ANSWER: dict[str, Any] = {
    "id": "msg_up1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hello"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 5, "output_tokens": 1},
}
LOGPROBS = {
    "content": [
        {"token": "Hello", "logprob": -0.1, "bytes": [72, 101, 108, 108, 111], "top_logprobs": []}
    ],
    "refusal": None,
}
CITATION = {
    "type": "web_search_result_location",
    "url": "https://e.com/a",
    "title": "E",
    "cited_text": "Hello",
    "encrypted_index": "Eo8B",
}
SERVER_BLOCKS = [
    {
        "type": "server_tool_use",
        "id": "srvtoolu_1",
        "name": "web_search",
        "input": {"query": "weather"},
    },
    {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_1",
        "content": [
            {
                "type": "web_search_result",
                "url": "https://e.com/a",
                "title": "E",
                "encrypted_content": "Eq",
                "page_age": None,
            }
        ],
    },
]


def _oresp(field_: str, patch: dict[str, Any], same: Expect, cross: Expect, note: str) -> Row:
    return Row("openai", "response", field_, patch, same, cross, note)


def _aresp(field_: str, patch: dict[str, Any], same: Expect, cross: Expect, note: str) -> Row:
    return Row("anthropic", "response", field_, patch, same, cross, note)


RESPONSES = [
    _oresp(
        "choices[].logprobs",
        {"choices": [{**OPENAI_ANSWER["choices"][0], "logprobs": LOGPROBS}]},
        Kept("choices[0].logprobs"),
        Absent("logprobs"),
        "dropped (Anthropic has no logprobs)",
    ),
    _oresp(
        "system_fingerprint",
        {"system_fingerprint": "fp_abc"},
        Kept("system_fingerprint"),
        Absent("system_fingerprint"),
        "dropped (no Anthropic form)",
    ),
    _oresp(
        "service_tier",
        {"service_tier": "default"},
        Kept("service_tier"),
        Absent("service_tier"),
        "dropped (no Anthropic form)",
    ),
    _oresp(
        "message.annotations (url_citation)",
        {
            "choices": [
                {
                    **OPENAI_ANSWER["choices"][0],
                    "message": {
                        "role": "assistant",
                        "content": "Hello",
                        "annotations": [
                            {
                                "type": "url_citation",
                                "url_citation": {
                                    "start_index": 0,
                                    "end_index": 5,
                                    "url": "https://e.com",
                                    "title": "E",
                                },
                            }
                        ],
                    },
                }
            ]
        },
        Kept("choices[0].message.annotations"),
        Absent("content[0].citations"),
        "dropped (an Anthropic web-search citation needs an index only Anthropic issues)",
    ),
    _oresp(
        "id",
        {},
        Mapped("id", "chatcmpl-up1"),
        Mapped("id", "msg_up1"),
        "`msg_…` (the upstream id inside it)",
    ),
    _oresp(
        "finish_reason=length",
        {"choices": [{**OPENAI_ANSWER["choices"][0], "finish_reason": "length"}]},
        Mapped("choices[0].finish_reason", "length"),
        Mapped("stop_reason", "max_tokens"),
        "`stop_reason: max_tokens`",
    ),
    _oresp(
        "usage.prompt_tokens_details.cached_tokens",
        {
            "usage": {
                "prompt_tokens": 9,
                "completion_tokens": 1,
                "total_tokens": 10,
                "prompt_tokens_details": {"cached_tokens": 4},
            }
        },
        Kept("usage.prompt_tokens_details.cached_tokens"),
        Mapped(
            "usage",
            {
                "input_tokens": 5,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 4,
            },
        ),
        "`usage.cache_read_input_tokens` (input_tokens without them)",
    ),
    _aresp(
        "content[].text.citations",
        {"content": [{"type": "text", "text": "Hello", "citations": [CITATION]}]},
        Kept("content[0].citations"),
        Mapped(
            "choices[0].message.annotations",
            [
                {
                    "type": "url_citation",
                    "url_citation": {
                        "start_index": 0,
                        "end_index": 5,
                        "url": "https://e.com/a",
                        "title": "E",
                    },
                }
            ],
        ),
        "`message.annotations` `url_citation` (web-search citations; other kinds dropped)",
    ),
    _aresp(
        "content[].redacted_thinking",
        {
            "content": [
                {"type": "redacted_thinking", "data": "EmwKAhgB"},
                {"type": "text", "text": "Hello"},
            ]
        },
        Kept("content[0]"),
        Mapped("choices[0].message.content", "Hello"),
        "dropped (no OpenAI form)",
    ),
    _aresp(
        "content[].server_tool_use / web_search_tool_result",
        {"content": [*SERVER_BLOCKS, {"type": "text", "text": "Hello"}]},
        Kept("content"),
        Mapped("choices[0].message.content", "Hello"),
        "dropped (the answer text stays)",
    ),
    _aresp(
        "content[].thinking",
        {
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Hello"},
            ]
        },
        Kept("content[0]"),
        Mapped("choices[0].message.content", "Hello"),
        "dropped (no Chat Completions form)",
    ),
    _aresp(
        "stop_reason=stop_sequence",
        {"stop_reason": "stop_sequence", "stop_sequence": "END"},
        Kept("stop_sequence"),
        Mapped("choices[0].finish_reason", "stop"),
        "`finish_reason: stop`",
    ),
    _aresp(
        "id",
        {},
        Mapped("id", "msg_up1"),
        Mapped("id", "chatcmpl-up1"),
        "`chatcmpl-…` (the upstream id inside it)",
    ),
    _aresp(
        "usage.cache_read_input_tokens",
        {
            "usage": {
                "input_tokens": 5,
                "output_tokens": 1,
                "cache_read_input_tokens": 4,
                "cache_creation_input_tokens": 2,
            }
        },
        Kept("usage"),
        Mapped("usage.prompt_tokens", 11),
        "`usage.prompt_tokens` includes cached tokens; `prompt_tokens_details.cached_tokens`",
    ),
]


# --- streams: rows carry the upstream's events ----------------------------------------------


def openai_chunks(
    on_text: dict[str, Any] | None = None, head: dict[str, Any] | None = None
) -> list[Any]:
    base = {
        "id": "chatcmpl-up1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o",
        **(head or {}),
    }
    text = {
        "index": 0,
        "delta": {"content": "Hello"},
        "logprobs": None,
        "finish_reason": None,
        **(on_text or {}),
    }
    return [
        {
            **base,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        },
        {**base, "choices": [text]},
        {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]},
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
        },
    ]


def anthropic_events(
    blocks: list[Any] | None = None, text_extra: list[Any] | None = None
) -> list[Any]:
    """message_start, the given whole blocks (as start/delta/stop), a text block, the end."""
    events: list[Any] = [
        {
            "type": "message_start",
            "message": {
                **ANTHROPIC_ANSWER,
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 5, "output_tokens": 1},
            },
        }
    ]
    index = 0
    for block in blocks or ():
        start = {**block, "input": {}} if "input" in block else block
        events.append({"type": "content_block_start", "index": index, "content_block": start})
        if "input" in block:
            import json

            events.append(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {
                        "type": "input_json_delta",
                        "partial_json": json.dumps(block["input"]),
                    },
                }
            )
        events.append({"type": "content_block_stop", "index": index})
        index += 1
    events.append(
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "text", "text": ""},
        }
    )
    events.append(
        {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": "Hello"},
        }
    )
    for extra in text_extra or ():
        events.append({"type": "content_block_delta", "index": index, "delta": extra})
    events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 1},
        }
    )
    events.append({"type": "message_stop"})
    return events


STREAMS = [
    Row(
        "openai",
        "stream",
        "chunk choices[].logprobs",
        openai_chunks({"logprobs": LOGPROBS}),
        Mapped("choices[0].logprobs.content[0].token", "Hello"),
        Absent("delta.logprobs"),
        "dropped (Anthropic has no logprobs)",
    ),
    Row(
        "openai",
        "stream",
        "chunk system_fingerprint",
        openai_chunks(head={"system_fingerprint": "fp_abc"}),
        Mapped("system_fingerprint", "fp_abc"),
        Absent("system_fingerprint"),
        "dropped (no Anthropic form)",
    ),
    Row(
        "openai",
        "stream",
        "chunk id",
        openai_chunks(),
        Mapped("id", "chatcmpl-up1"),
        Mapped("message.id", "msg_up1"),
        "`message_start.message.id` `msg_…`",
    ),
    Row(
        "openai",
        "stream",
        "usage (input known before the call)",
        openai_chunks(),
        Absent("usage"),  # the caller did not ask (stream_options.include_usage)
        Present("message.usage.input_tokens"),
        "`message_start.usage.input_tokens` announced from Sluice's count;"
        " `message_delta.usage` from the upstream's",
    ),
    Row(
        "anthropic",
        "stream",
        "citations_delta",
        anthropic_events(text_extra=[{"type": "citations_delta", "citation": CITATION}]),
        Mapped("delta.citation", CITATION),
        Mapped("choices[0].delta.content", "Hello"),
        "dropped in streams (non-streamed answers map them)",
    ),
    Row(
        "anthropic",
        "stream",
        "server_tool_use / web_search_tool_result blocks",
        anthropic_events(SERVER_BLOCKS),
        Mapped("content_block.type", "web_search_tool_result"),
        Mapped("choices[0].delta.content", "Hello"),
        "dropped (the answer text stays)",
    ),
    Row(
        "anthropic",
        "stream",
        "redacted_thinking block",
        anthropic_events([{"type": "redacted_thinking", "data": "EmwKAhgB"}]),
        Mapped("content_block.data", "EmwKAhgB"),
        Mapped("choices[0].delta.content", "Hello"),
        "dropped (no OpenAI form)",
    ),
    Row(
        "anthropic",
        "stream",
        "message_start id",
        anthropic_events(),
        Mapped("message.id", "msg_up1"),
        Mapped("id", "chatcmpl-up1"),
        "chunk `id` `chatcmpl-…`",
    ),
]

ROWS: list[Row] = []
for _row in [*OPENAI_REQUEST, *ANTHROPIC_REQUEST, *HEADERS, *RESPONSES, *STREAMS]:
    ROWS.append(Row(**{**_row.__dict__, "id": f"{_row.api}-{_row.where}-{_row.field}"}))


# --- README ---------------------------------------------------------------------------------

BEGIN = "<!-- fidelity-matrix: generated from tests/fidelity/table.py; do not edit by hand -->"
END = "<!-- /fidelity-matrix -->"
_TITLES = {
    ("openai", "request"): "OpenAI caller → Anthropic model (request)",
    ("anthropic", "request"): "Anthropic caller → OpenAI model (request)",
    ("anthropic", "header"): "Anthropic caller → OpenAI model (headers)",
    ("anthropic", "response"): "Anthropic model → OpenAI caller (answer)",
    ("openai", "response"): "OpenAI model → Anthropic caller (answer)",
    ("openai", "stream"): "OpenAI model → Anthropic caller (stream)",
    ("anthropic", "stream"): "Anthropic model → OpenAI caller (stream)",
}


def render_notes() -> str:
    """The Markdown between BEGIN and END in README.md."""
    out = [BEGIN, ""]
    for (api, where), title in _TITLES.items():
        rows = [r for r in ROWS if (r.api, r.where) == (api, where)]
        out += [f"**{title}**", "", "| field | becomes |", "| --- | --- |"]
        out += [f"| `{r.field}` | {r.note} |" for r in rows]
        out.append("")
    out.append(END)
    return "\n".join(out)


def readme_section(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[start:end]


if __name__ == "__main__":
    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text()
    readme.write_text(text.replace(readme_section(text), render_notes()))
    sys.stdout.write("README.md translation notes rewritten from the table\n")
