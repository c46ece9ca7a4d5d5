"""Token counts of a request before it is sent, and their calibration against real usage.

- OpenAI models (any name tiktoken knows: gpt-4o, gpt-4.1, gpt-5, o-series ...): the
  model's own encoding plus the chat framing — 3 tokens per message, the role, 1 more for
  a `name`, and 3 that prime the reply. Exact for text conversations; tool definitions,
  tool calls and images are framed in ways OpenAI does not publish, so a request carrying
  them is counted the same way but marked an estimate.
- Claude: no offline tokenizer exists for Claude 3+, so the o200k count times
  `CLAUDE_MARGIN`, marked an estimate.
- Anything else (the simulator's models, local models): `sluice.tokens`, the estimator the
  simulator reports usage with.

`Calibration` learns, per upstream model, the ratio of the input tokens the provider
reported to the estimate (an exponentially weighted moving average) and corrects later
estimates with it. Billing never uses these numbers: it uses the provider's usage.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import tiktoken

from sluice import tokens as approx
from sluice.context.encodings import (
    EXPECTED_SHA256,
    encoding_name,
    get_encoding,
    loaded_encoding,
)
from sluice.types import ChatRequest, ImagePart, Message, TextPart, ToolCallPart, ToolResultPart

TOKENS_PER_MESSAGE = 3  # <|start|>{role}<|message|> ... <|end|>, minus the role itself
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>
CLAUDE_MARGIN = 1.2  # Claude's tokenizer yields more tokens than o200k; calibration refines
IMAGE_TOKENS = {"low": 85}  # OpenAI's low-detail price; high detail depends on the size
IMAGE_TOKENS_DEFAULT = 765  # a 1024x1024 image at high detail (4 tiles of 170, plus 85)
_TOOL_CALL_FRAMING = 8  # an estimate: OpenAI does not publish how tool calls are framed
_TOOL_FRAMING = 12


@dataclass(slots=True, frozen=True)
class TokenCount:
    tokens: int
    exact: bool  # False: an estimate (see the module docstring for how it was made)


def family(upstream_model: str) -> str | None:
    """The encoding a model's count is made with: tiktoken's name, or None (estimator)."""
    name = encoding_name(upstream_model)
    if name in EXPECTED_SHA256:
        return name
    if upstream_model.lower().startswith("claude"):
        return "o200k_base"
    return None


async def prepare(upstream_model: str) -> None:
    """Load the model's encoding in a worker thread, so counting never blocks the loop."""
    name = family(upstream_model)
    if name is not None and loaded_encoding(name) is None:
        await asyncio.to_thread(get_encoding, name)


def count_request(req: ChatRequest, upstream_model: str) -> TokenCount:
    """Input tokens `req` will cost on `upstream_model` (see the module docstring)."""
    name = family(upstream_model)
    if name is None:
        return TokenCount(approx.estimate_request_tokens(req), exact=False)
    counted, exact = _count_chat(req, get_encoding(name))
    if upstream_model.lower().startswith("claude"):
        return TokenCount(math.ceil(counted * CLAUDE_MARGIN), exact=False)
    return TokenCount(counted, exact)


def count_messages(messages: list[dict[str, str]], upstream_model: str) -> int:
    """The OpenAI chat count of plain `{"role", "content", "name"?}` dicts (as in the
    OpenAI cookbook); raises KeyError for a model that is not an OpenAI model."""
    name = encoding_name(upstream_model)
    if name is None:
        raise KeyError(f"{upstream_model!r} is not an OpenAI model")
    enc = get_encoding(name)
    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += len(enc.encode_ordinary(value))
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def _count_chat(req: ChatRequest, enc: tiktoken.Encoding) -> tuple[int, bool]:
    def n(text: str) -> int:
        return len(enc.encode_ordinary(text))

    exact = not req.tools
    total = REPLY_PRIMING
    if req.system:
        total += TOKENS_PER_MESSAGE + n("system") + n("".join(p.text for p in req.system))
        exact = exact and len(req.system) == 1
    for msg in req.messages:
        counted, plain = _count_message(msg, n)
        total += counted
        exact = exact and plain
    for tool in req.tools:
        spec: dict[str, object] = {"name": tool.name, "parameters": tool.parameters}
        if tool.description is not None:
            spec["description"] = tool.description
        total += _TOOL_FRAMING + n(orjson.dumps(spec).decode())
    return total, exact


def _count_message(msg: Message, n: Callable[[str], int]) -> tuple[int, bool]:
    """One neutral message as it goes out in OpenAI's format (a tool turn: one message
    per result). Returns the count and whether it is exact."""
    texts = [p.text for p in msg.parts if isinstance(p, TextPart)]
    plain = len(msg.parts) == 1 and len(texts) == 1
    total = 0
    if msg.role == "tool":
        for part in msg.parts:
            if isinstance(part, ToolResultPart):
                body = "".join(p.text for p in part.content if isinstance(p, TextPart))
                total += TOKENS_PER_MESSAGE + n("tool") + n(body) + n(part.tool_call_id)
        return total, False
    total += TOKENS_PER_MESSAGE + n(msg.role) + n("".join(texts))
    if msg.name is not None:
        total += TOKENS_PER_NAME + n(msg.name)
    for part in msg.parts:
        if isinstance(part, ToolCallPart):
            total += _TOOL_CALL_FRAMING + n(part.name) + n(part.arguments)
        elif isinstance(part, ImagePart):
            total += IMAGE_TOKENS.get(part.detail or "", IMAGE_TOKENS_DEFAULT)
    return total, plain


class Calibration:
    """Per upstream model: EWMA of reported input tokens / estimated input tokens.

    `correct` scales an estimate by the learned ratio (1.0 until the first observation).
    Exact counts are observed too, so a drift (a changed chat template) shows up in the
    `sluice_token_estimate_ratio` metric.
    """

    def __init__(self, alpha: float = 0.2, clamp: tuple[float, float] = (0.25, 4.0)) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self._alpha = alpha
        self._clamp = clamp
        self._ratios: dict[str, float] = {}
        self._samples: dict[str, int] = {}

    def observe(self, upstream_model: str, estimated: int, actual: int) -> None:
        if estimated <= 0 or actual <= 0:
            return  # nothing learned from an empty count or a provider that reports none
        low, high = self._clamp
        ratio = min(high, max(low, actual / estimated))
        old = self._ratios.get(upstream_model)
        self._ratios[upstream_model] = ratio if old is None else old + self._alpha * (ratio - old)
        self._samples[upstream_model] = self._samples.get(upstream_model, 0) + 1

    def ratio(self, upstream_model: str) -> float:
        return self._ratios.get(upstream_model, 1.0)

    def samples(self, upstream_model: str) -> int:
        return self._samples.get(upstream_model, 0)

    def ratios(self) -> dict[str, float]:
        return dict(self._ratios)

    def correct(self, upstream_model: str, count: TokenCount) -> int:
        """The estimate scaled by what this model's provider has been reporting."""
        return math.ceil(count.tokens * self.ratio(upstream_model))
