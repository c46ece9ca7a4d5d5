"""Automatic Anthropic prompt-cache breakpoints on encoded bodies
(sluice.providers.prompt_cache)."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from sluice.config import AnthropicProviderConfig, DeploymentConfig
from sluice.providers.anthropic import AnthropicProvider
from sluice.providers.base import Deployment
from sluice.providers.prompt_cache import PrefixMemory, add_breakpoints, count_breakpoints
from sluice.tokens import count_text
from sluice.types import CallMeta, ChatRequest, Message, TextPart

LONG = " ".join(f"word{i}" for i in range(800))  # ~1600 estimated tokens
SHORT = "You are terse."
EPHEMERAL = {"type": "ephemeral"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def body(
    system: Any = LONG, messages: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": messages or [{"role": "user", "content": "What is word7?"}],
        **extra,
    }
    if system is not None:
        out["system"] = system
    return out


def marks(b: dict[str, Any]) -> list[str]:
    """Where breakpoints are: 'system[i]', 'messages[i][j]', 'tools[i]'."""
    out = []
    system = b.get("system")
    for i, block in enumerate(system if isinstance(system, list) else []):
        if "cache_control" in block:
            out.append(f"system[{i}]")
    for i, tool in enumerate(b.get("tools", [])):
        if "cache_control" in tool:
            out.append(f"tools[{i}]")
    for i, msg in enumerate(b["messages"]):
        content = msg["content"]
        for j, block in enumerate(content if isinstance(content, list) else []):
            if "cache_control" in block:
                out.append(f"messages[{i}][{j}]")
    return out


def test_long_system_prompt_gets_a_breakpoint() -> None:
    b = body()
    assert count_text(LONG) > 1024
    assert add_breakpoints(b, 1024, PrefixMemory()) == 1
    assert b["system"] == [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]
    assert b["messages"] == [{"role": "user", "content": "What is word7?"}]  # untouched


def test_short_prefix_is_left_alone() -> None:
    b = body(system=SHORT)
    before = copy.deepcopy(b)
    assert add_breakpoints(b, 1024, PrefixMemory()) == 0
    assert b == before  # not even the string turned into blocks


def test_minimum_comes_from_the_caller() -> None:
    b = body()
    assert add_breakpoints(b, 4096, PrefixMemory()) == 0  # Haiku 4.5 class minimum
    assert marks(b) == []


def test_tools_alone_form_the_head() -> None:
    tools = [
        {"name": "lookup", "description": LONG, "input_schema": {"type": "object"}},
    ]
    b = body(system=None, tools=tools)
    assert add_breakpoints(b, 1024, PrefixMemory()) == 1
    assert marks(b) == ["tools[0]"]


def test_repeated_conversation_prefix_is_marked_on_the_next_turn() -> None:
    memory = PrefixMemory()
    turn1 = [{"role": "user", "content": LONG}]
    first = body(system=SHORT, messages=copy.deepcopy(turn1))
    assert add_breakpoints(first, 1024, memory) == 0  # nothing seen before, head too short
    turn2 = [*turn1, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}]
    second = body(system=SHORT, messages=copy.deepcopy(turn2))
    assert add_breakpoints(second, 1024, memory) == 1
    assert marks(second) == ["messages[0][0]"]  # the end of what the first call sent
    assert second["messages"][0]["content"] == [
        {"type": "text", "text": LONG, "cache_control": EPHEMERAL}
    ]
    turn3 = [*turn2, {"role": "assistant", "content": "sure"}, {"role": "user", "content": "x"}]
    third = body(system=SHORT, messages=copy.deepcopy(turn3))
    add_breakpoints(third, 1024, memory)
    # Every message end the second call sent is now a repeat (the head is too short).
    assert marks(third) == ["messages[0][0]", "messages[1][0]", "messages[2][0]"]


def test_repeats_expire_after_the_window() -> None:
    clock = Clock()
    memory = PrefixMemory(window_s=60, clock=clock)
    msgs = [{"role": "user", "content": LONG}, {"role": "assistant", "content": "ok"}]
    add_breakpoints(body(system=SHORT, messages=copy.deepcopy(msgs[:1])), 1024, memory)
    clock.now = 61
    later = body(system=SHORT, messages=copy.deepcopy(msgs))
    assert add_breakpoints(later, 1024, memory) == 0


def test_memory_is_bounded() -> None:
    memory = PrefixMemory(max_entries=3)
    for i in range(10):
        memory.remember(bytes([i]))
    assert len(memory) == 3
    assert memory.seen(bytes([9])) and not memory.seen(bytes([0]))


def test_callers_breakpoints_count_towards_four() -> None:
    system = [
        {"type": "text", "text": f"part {i} " + LONG, "cache_control": EPHEMERAL} for i in range(3)
    ] + [{"type": "text", "text": LONG}]
    b = body(system=system)
    assert add_breakpoints(b, 1024, PrefixMemory()) == 1
    assert count_breakpoints(b) == 4
    full = body(system=[{**block, "cache_control": EPHEMERAL} for block in system])
    assert add_breakpoints(full, 1024, PrefixMemory()) == 0
    assert count_breakpoints(full) == 4


def test_top_level_cache_control_and_tool_result_contents_count() -> None:
    msgs = [
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": "x", "cache_control": EPHEMERAL}],
                }
            ],
        }
    ]
    b = body(messages=msgs, cache_control=EPHEMERAL)
    assert count_breakpoints(b) == 2


def test_never_more_than_four_even_with_many_repeats() -> None:
    memory = PrefixMemory()
    msgs: list[dict[str, Any]] = []
    for i in range(8):
        msgs.append({"role": "user", "content": f"q{i} " + LONG})
        add_breakpoints(body(messages=copy.deepcopy(msgs)), 1024, memory)
        msgs.append({"role": "assistant", "content": f"a{i}"})
    b = body(messages=[*copy.deepcopy(msgs), {"role": "user", "content": "last"}])
    assert add_breakpoints(b, 1024, memory) == 4
    assert count_breakpoints(b) == 4


def test_thinking_blocks_are_never_marked() -> None:
    memory = PrefixMemory()
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": LONG},
        {
            "role": "assistant",
            "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}],
        },
    ]
    add_breakpoints(body(system=SHORT, messages=copy.deepcopy(msgs)), 1024, memory)
    again = body(system=SHORT, messages=[*copy.deepcopy(msgs), {"role": "user", "content": "x"}])
    add_breakpoints(again, 1024, memory)
    assert "cache_control" not in again["messages"][1]["content"][0]


def test_digest_ignores_the_marks_it_added() -> None:
    memory = PrefixMemory()
    msgs = [{"role": "user", "content": LONG}]
    first = body(system=SHORT, messages=copy.deepcopy(msgs))
    add_breakpoints(first, 1024, memory)
    # The caller now sends the same message as a marked block: still recognised.
    marked = [
        {"role": "user", "content": [{"type": "text", "text": LONG, "cache_control": EPHEMERAL}]}
    ]
    second = body(system=SHORT, messages=[*marked, {"role": "assistant", "content": "ok"}])
    add_breakpoints(second, 1024, memory)
    assert count_breakpoints(second) == 1  # the caller's; nothing doubled on the same block


# --- the adapter ----------------------------------------------------------------------


def _provider(mode: str = "auto") -> AnthropicProvider:
    return AnthropicProvider(
        "a",
        AnthropicProviderConfig(kind="anthropic", api_base="http://x", prompt_caching=mode),  # type: ignore[arg-type]
    )


def _dep(model: str = "claude-sonnet-4-5", **cfg: Any) -> Deployment:
    return Deployment.from_config(DeploymentConfig(id="d", provider="a", model=model, **cfg))


def _request() -> ChatRequest:
    return ChatRequest(
        "claude-sonnet",
        [Message("user", [TextPart("hi")])],
        system=[TextPart(LONG)],
        meta=CallMeta(wire="anthropic"),
    )


def test_adapter_adds_breakpoints_by_default() -> None:
    sent = orjson.loads(_provider()._body(_request(), _dep()))
    assert sent["system"][0]["cache_control"] == EPHEMERAL


def test_adapter_respects_off_per_provider_and_per_deployment() -> None:
    assert isinstance(orjson.loads(_provider("off")._body(_request(), _dep()))["system"], str)
    off = _dep(prompt_caching="off")
    assert isinstance(orjson.loads(_provider()._body(_request(), off))["system"], str)
    on = _dep(prompt_caching="auto")
    assert "cache_control" in orjson.loads(_provider("off")._body(_request(), on))["system"][0]


def test_adapter_minimum_from_price_table_and_deployment() -> None:
    # claude-haiku-4-5 needs 4096 tokens (prices.yaml): ~1600 is not enough.
    haiku = orjson.loads(_provider()._body(_request(), _dep("claude-haiku-4-5")))
    assert isinstance(haiku["system"], str)
    lowered = _dep("claude-haiku-4-5", min_cache_tokens=1024)
    assert "cache_control" in orjson.loads(_provider()._body(_request(), lowered))["system"][0]


def test_schema_instruction_is_kept_when_the_system_prompt_has_blocks() -> None:
    """A marked (or multi-part) system prompt keeps the JSON-mode instruction appended to it."""
    from sluice.wire.anthropic.request import encode_request

    req = _request()
    req.system = [TextPart(LONG, {"type": "ephemeral"}), TextPart("Be brief.")]
    req.response_format = {"type": "json_object"}
    system = encode_request(req, "claude-sonnet-4-5")["system"]
    assert [block["text"] for block in system][-1].startswith("Respond with a single valid JSON")
    assert system[0]["cache_control"] == EPHEMERAL and len(system) == 3


def test_with_two_slots_left_the_furthest_repeat_and_the_head_win() -> None:
    memory = PrefixMemory()
    tools = [
        {"name": f"t{i}", "input_schema": {"type": "object"}, "cache_control": EPHEMERAL}
        for i in range(2)
    ]
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "q2"},
    ]
    add_breakpoints(body(messages=copy.deepcopy(msgs), tools=tools), 1024, memory)
    longer = [*msgs, {"role": "assistant", "content": "a2"}, {"role": "user", "content": "q3"}]
    b = body(messages=copy.deepcopy(longer), tools=copy.deepcopy(tools))
    assert add_breakpoints(b, 1024, memory) == 2
    # All three first messages repeat; only the furthest one and the system end get marks.
    assert marks(b) == ["system[0]", "tools[0]", "tools[1]", "messages[2][0]"]
