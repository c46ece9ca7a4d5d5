"""What a stream that did not finish is charged: delivered output, announced or estimated
input, calibrated against the provider's own counts; never below what it reported."""

from __future__ import annotations

from sluice.stages.delivered import DeliveredUsage, counted_output
from sluice.tokens import count_text, estimate_request_tokens
from sluice.types import ChatRequest, ChatResponse, Message, TextPart, ToolCallPart, Usage

REQ = ChatRequest("m", [Message("user", [TextPart("Tell me about the river delta")])])
TEXT = "The delta spreads its water over a wide and flat plain"


def answer(usage: Usage, text: str = TEXT) -> ChatResponse:
    return ChatResponse("r", "m", [TextPart(text)], usage=usage)


def test_a_completed_stream_keeps_the_providers_usage() -> None:
    usage, source = DeliveredUsage().of_stream(REQ, answer(Usage(40, 30)), True, "m")
    assert (usage, source) == (Usage(40, 30), "provider")


def test_a_cut_stream_is_charged_its_delivered_text_and_the_estimated_prompt() -> None:
    usage, source = DeliveredUsage().of_stream(REQ, answer(Usage()), False, "m")
    assert source == "estimated"
    assert usage == Usage(estimate_request_tokens(REQ), count_text(TEXT))


def test_announced_input_is_used_and_reported_output_never_lowered() -> None:
    usage, _ = DeliveredUsage().of_stream(REQ, answer(Usage(500, 90)), False, "m")
    assert usage.input_tokens == 500  # Anthropic's message_start
    assert usage.output_tokens == 90  # more than the text counts: the provider's word wins


def test_estimates_follow_what_the_provider_reports() -> None:
    delivered = DeliveredUsage()
    counted = count_text(TEXT)
    # This provider counts 1.5x what the estimator does.
    delivered.of_stream(REQ, answer(Usage(60, round(counted * 1.5))), True, "m")
    usage, _ = delivered.of_stream(REQ, answer(Usage()), False, "m")
    assert usage.output_tokens >= round(counted * 1.5) - 1


def test_tool_call_arguments_count() -> None:
    resp = ChatResponse("r", "m", [ToolCallPart("c1", "lookup", '{"city": "Lisbon"}')])
    assert counted_output(resp) == count_text("lookup") + count_text('{"city": "Lisbon"}')
