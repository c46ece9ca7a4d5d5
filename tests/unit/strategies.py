"""Hypothesis strategies for neutral values in the canonical form each wire decodes to."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

from sluice.types import (
    CallMeta,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
    Usage,
)

text = st.text(max_size=40)
nonempty = st.text(min_size=1, max_size=40)
ident = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ident, inner, max_size=3),
    max_leaves=8,
)
json_object = st.dictionaries(ident, json_value, max_size=4)
arguments = json_object.map(lambda d: orjson.dumps(d).decode())
cache = st.none() | st.just({"type": "ephemeral"})
image_url = st.sampled_from(
    [
        "https://example.com/cat.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "data:image/jpeg;base64,/9j/4AAQ",
    ]
)
usage = st.builds(
    lambda i, o, r, w: Usage(i + r + w, o, r, w),
    st.integers(0, 10**6),
    st.integers(0, 10**5),
    st.integers(0, 10**5),
    st.integers(0, 10**5),
)


def _openai_messages() -> st.SearchStrategy[list[Message]]:
    user = st.builds(
        lambda parts, name: Message("user", parts, name),
        st.lists(
            st.builds(TextPart, text)
            | st.builds(ImagePart, image_url, st.none() | st.sampled_from(["low", "high", "auto"])),
            min_size=1,
            max_size=3,
        ),
        st.none() | ident,
    )
    assistant = st.builds(
        lambda texts, calls, name: Message("assistant", texts + calls, name),
        st.lists(st.builds(TextPart, nonempty), max_size=2),
        st.lists(st.builds(ToolCallPart, ident, ident, arguments), max_size=2),
        st.none() | ident,
    ).filter(lambda m: bool(m.parts))
    tool = st.builds(
        lambda cid, texts: Message("tool", [ToolResultPart(cid, texts)]),
        ident,
        st.lists(st.builds(TextPart, text), min_size=1, max_size=2),
    )
    return st.lists(user | assistant | tool, min_size=1, max_size=5)


def _anthropic_messages() -> st.SearchStrategy[list[Message]]:
    user = st.builds(
        lambda parts: Message("user", parts),
        st.lists(
            st.builds(TextPart, text, cache) | st.builds(ImagePart, image_url, st.none(), cache),
            min_size=1,
            max_size=3,
        ),
    )
    assistant = st.builds(
        lambda parts: Message("assistant", parts),
        st.lists(
            st.builds(TextPart, text, cache)
            | st.builds(ToolCallPart, ident, ident, arguments, cache)
            | st.builds(ThinkingPart, text, nonempty),
            min_size=1,
            max_size=3,
        ),
    )
    tool = st.builds(
        lambda cid, content, err, cc: Message("tool", [ToolResultPart(cid, content, err, cc)]),
        ident,
        st.lists(
            st.builds(TextPart, text, cache) | st.builds(ImagePart, image_url, st.none(), cache),
            max_size=2,
        ),
        st.booleans(),
        cache,
    )
    return st.lists(user | assistant | tool, min_size=1, max_size=5)


def _tools(with_cache: bool) -> st.SearchStrategy[list[Tool]]:
    return st.lists(
        st.builds(
            Tool,
            ident,
            st.none() | nonempty,
            st.just({"type": "object", "properties": {"q": {"type": "string"}}}),
            cache if with_cache else st.none(),
        ),
        max_size=2,
    )


def _meta(user: Any) -> CallMeta:
    return CallMeta(user=user)


def openai_requests() -> st.SearchStrategy[ChatRequest]:
    return st.builds(
        ChatRequest,
        model=ident,
        messages=_openai_messages(),
        system=st.lists(st.builds(TextPart, text), max_size=2),
        tools=_tools(False),
        tool_choice=st.none()
        | st.builds(ToolChoice, st.sampled_from(["auto", "none", "required"]))
        | st.builds(lambda n: ToolChoice("tool", n), ident),
        parallel_tool_calls=st.none() | st.booleans(),
        response_format=st.none() | st.just({"type": "json_object"}),
        max_tokens=st.none() | st.integers(1, 100_000),
        temperature=st.none() | st.floats(0, 2),
        top_p=st.none() | st.floats(0, 1),
        top_k=st.none() | st.integers(1, 100),
        stop=st.lists(nonempty, max_size=4),
        seed=st.none() | st.integers(0, 2**31),
        stream=st.booleans(),
        extras=st.just({}) | st.just({"frequency_penalty": 0.5, "logprobs": True}),
        meta=st.builds(_meta, st.none() | ident),
    )


def _anthropic_choice(draw: Any) -> tuple[ToolChoice | None, bool | None]:
    choice = draw(
        st.none()
        | st.builds(ToolChoice, st.sampled_from(["auto", "none", "required"]))
        | st.builds(lambda n: ToolChoice("tool", n), ident)
    )
    parallel = None
    if choice is not None and choice.mode != "none":
        parallel = draw(st.none() | st.just(False))
    return choice, parallel


@st.composite
def anthropic_requests(draw: Any) -> ChatRequest:
    choice, parallel = _anthropic_choice(draw)
    return ChatRequest(
        model=draw(ident),
        messages=draw(_anthropic_messages()),
        system=draw(st.lists(st.builds(TextPart, text, cache), max_size=2)),
        tools=draw(_tools(True)),
        tool_choice=choice,
        parallel_tool_calls=parallel,
        max_tokens=draw(st.integers(1, 100_000)),
        temperature=draw(st.none() | st.floats(0, 1)),
        top_p=draw(st.none() | st.floats(0, 1)),
        top_k=draw(st.none() | st.integers(1, 100)),
        stop=draw(st.lists(nonempty, max_size=3)),
        stream=draw(st.booleans()),
        extras=draw(
            st.just({}) | st.just({"thinking": {"type": "enabled", "budget_tokens": 1024}})
        ),
        meta=_meta(draw(st.none() | ident)),
    )


def openai_responses() -> st.SearchStrategy[ChatResponse]:
    return st.builds(
        lambda rid, texts, calls, finish, u, created: ChatResponse(
            "chatcmpl-" + rid, "m", texts + calls, finish, u, None, created
        ),
        ident,
        st.lists(st.builds(TextPart, nonempty), max_size=1),
        st.lists(st.builds(ToolCallPart, ident, ident, arguments), max_size=3),
        st.sampled_from(["stop", "length", "tool_calls", "content_filter"]),
        usage,
        st.integers(1, 2**31),
    )


def anthropic_responses() -> st.SearchStrategy[ChatResponse]:
    def build(rid: str, parts: list[Any], finish: Any, u: Usage, seq: str) -> ChatResponse:
        return ChatResponse(
            "msg_" + rid, "m", parts, finish, u, seq if finish == "stop_sequence" else None
        )

    return st.builds(
        build,
        ident,
        st.lists(
            st.builds(TextPart, text)
            | st.builds(ToolCallPart, ident, ident, arguments)
            | st.builds(ThinkingPart, text, nonempty),
            max_size=3,
        ),
        st.sampled_from(["stop", "length", "tool_calls", "stop_sequence", "content_filter"]),
        usage,
        nonempty,
    )
