"""`request_tokens_at_most` lets the executor skip counting: it must never be below the
estimate, or a request too big for a context window would be sent anyway."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.tokens import estimate_request_tokens, request_tokens_at_most
from sluice.types import ChatRequest, Message, TextPart, Tool, ToolCallPart, ToolResultPart

texts = st.text(max_size=200)
parts = st.one_of(
    texts.map(TextPart),
    texts.map(lambda t: ToolCallPart(id="c1", name="f", arguments=t)),
    st.lists(texts.map(TextPart), max_size=3).map(
        lambda ps: ToolResultPart(tool_call_id="c1", content=list(ps))
    ),
)
messages = st.lists(
    st.builds(Message, role=st.sampled_from(["user", "assistant", "tool"]), parts=st.lists(parts)),
    min_size=1,
    max_size=5,
)


@settings(max_examples=300)
@given(messages, st.lists(texts.map(TextPart), max_size=2), st.booleans())
def test_bound_is_never_below_the_estimate(
    msgs: list[Message], system: list[TextPart], with_tool: bool
) -> None:
    tools = [Tool(name="lookup", description="find", parameters={"type": "object"})]
    req = ChatRequest(model="m", messages=msgs, system=system, tools=tools if with_tool else [])
    assert request_tokens_at_most(req) >= estimate_request_tokens(req)


def test_bound_of_plain_prose_is_its_length_plus_framing() -> None:
    req = ChatRequest(model="m", messages=[Message(role="user", parts=[TextPart("hello world")])])
    assert request_tokens_at_most(req) == 3 + 3 + len("hello world")
