"""The usage of a stream that did not end normally: what was delivered is charged.

A provider reports a stream's usage at its very end (OpenAI's last chunk, Anthropic's
`message_delta`). A stream the client dropped, the upstream cut, or the drain timeout ended
never gets there, and was charged 0 tokens — ten dropped calls delivered ~10k tokens against
a hard budget and charged nothing. So when the final usage is missing:

- output tokens: the delivered text, thinking and tool-call arguments, counted with the
  estimator the simulator reports with, scaled by what this upstream model's provider has
  been reporting against that count (`OutputCalibration`, learned from completed streams);
- input tokens: the provider's when it announced them (Anthropic's `message_start`), else
  the request's estimate, likewise calibrated.

Whatever the provider did report is never lowered. The result says where it came from
(`provider` | `estimated`) so the record can show it.
"""

from __future__ import annotations

import math
from typing import Literal

from sluice import tokens as approx
from sluice.context.tokens import Calibration
from sluice.types import ChatRequest, ChatResponse, TextPart, ThinkingPart, ToolCallPart, Usage

UsageSource = Literal["provider", "estimated"]
SAMPLE_EVERY = 8


def counted_output(resp: ChatResponse) -> int:
    """Estimated tokens of everything the answer streamed so far."""
    total = 0
    for part in resp.parts:
        if isinstance(part, TextPart):
            total += approx.count_text(part.text)
        elif isinstance(part, ThinkingPart):
            total += approx.count_text(part.thinking)
        elif isinstance(part, ToolCallPart):
            total += approx.count_text(part.name) + approx.count_text(part.arguments)
    return total


class DeliveredUsage:
    """Per upstream model, the provider's reported tokens over our count (input and output),
    so estimates of cut streams land where the provider's own count would."""

    __slots__ = ("_seen", "inputs", "outputs")

    def __init__(self) -> None:
        self.inputs = Calibration()
        self.outputs = Calibration()
        self._seen = 0

    def observe(self, req: ChatRequest, resp: ChatResponse, upstream_model: str) -> None:
        """Learn from an answer whose usage the provider reported in full — one stream in
        `SAMPLE_EVERY`: counting a long prompt costs milliseconds, and the ratio moves slowly."""
        self._seen += 1
        if (self._seen - 1) % SAMPLE_EVERY:
            return
        self.outputs.observe(upstream_model, counted_output(resp), resp.usage.output_tokens)
        self.inputs.observe(
            upstream_model, approx.estimate_request_tokens(req), resp.usage.input_tokens
        )

    def of_stream(
        self,
        req: ChatRequest,
        resp: ChatResponse,
        completed: bool,
        upstream_model: str,
        *,
        learn: bool = True,
    ) -> tuple[Usage, UsageSource]:
        """The usage to charge for a stream that ended (`completed`: with its finish).
        `learn=False`: `req` is not what the provider was sent (a continuation), so the
        stream is no sample for the calibration."""
        reported = resp.usage
        if completed and reported.output_tokens > 0 and reported.input_tokens > 0:
            if learn:
                self.observe(req, resp, upstream_model)
            return reported, "provider"
        output = math.ceil(counted_output(resp) * self.outputs.ratio(upstream_model))
        inputs = reported.input_tokens
        if inputs <= 0:
            estimate = approx.estimate_request_tokens(req)
            inputs = math.ceil(estimate * self.inputs.ratio(upstream_model))
        usage = Usage(
            input_tokens=inputs,
            output_tokens=max(reported.output_tokens, output),
            cache_read_tokens=reported.cache_read_tokens,
            cache_write_tokens=reported.cache_write_tokens,
        )
        return usage, "estimated"
