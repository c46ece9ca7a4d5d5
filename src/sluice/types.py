"""The provider-neutral request, response and stream-event model.

Front ends decode their wire format into these types, provider adapters encode them for
their upstream, and everything in between (pipeline stages) only ever sees these. Two
front ends + two adapters meet here, so any client reaches any provider.

Conventions that keep translation lossless:
- `ChatRequest.system` holds system/developer text; `messages` hold user, assistant and
  tool turns. A tool turn carries exactly one `ToolResultPart` (OpenAI's shape); the
  Anthropic adapter merges consecutive tool turns (and a following user turn) into one
  user message, and its front end splits them again.
- `Usage.input_tokens` counts *all* prompt tokens, cached ones included (OpenAI's
  convention); `cache_read_tokens` and `cache_write_tokens` are subsets of it.
- Tool-call arguments are kept as the raw JSON string the model produced.
- Content with no neutral meaning (Anthropic `redacted_thinking`, server-tool blocks, a
  future block type) is an `OpaquePart` holding the caller's block verbatim: the same wire
  gets it back byte for byte; another wire maps it where a form exists (`wire/mapping.py`)
  or refuses it with a 400 naming the part and the model. Documents, files and audio are
  neutral (`DocumentPart`, `AudioPart`) and keep their original block for the same reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeAlias

JSON: TypeAlias = Any
CacheControl: TypeAlias = dict[str, Any]

FinishReason = Literal["stop", "length", "tool_calls", "stop_sequence", "content_filter"]
Role = Literal["user", "assistant", "tool"]
WireFormat = Literal["openai", "anthropic"]


@dataclass(slots=True)
class TextPart:
    text: str
    cache_control: CacheControl | None = None
    # Anthropic `citations` of a text block (response side; request history too).
    citations: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class ImagePart:
    """An image by URL; inline images are `data:<media type>;base64,<data>` URLs."""

    url: str
    detail: str | None = None
    cache_control: CacheControl | None = None


@dataclass(slots=True)
class ToolCallPart:
    id: str
    name: str
    arguments: str  # raw JSON text as produced by the model
    cache_control: CacheControl | None = None


@dataclass(slots=True)
class ToolResultPart:
    tool_call_id: str
    content: list[ResultContent]
    is_error: bool = False
    cache_control: CacheControl | None = None


@dataclass(slots=True)
class ThinkingPart:
    """Reasoning text some models return; kept so it is not lost, never sent to OpenAI."""

    thinking: str
    signature: str | None = None


@dataclass(slots=True)
class DocumentPart:
    """A document or file: PDF (base64 `data` or `url`), plain text (`data` is the text), a
    provider file id, or an Anthropic `search_result` (`kind`). `raw` is the caller's block,
    sent back unchanged when the upstream speaks the caller's wire (`wire`)."""

    kind: Literal["document", "file", "search_result"]
    media_type: str | None = None
    data: str | None = None
    url: str | None = None
    file_id: str | None = None
    filename: str | None = None
    title: str | None = None
    raw: dict[str, Any] | None = None
    wire: WireFormat | None = None
    cache_control: CacheControl | None = None


@dataclass(slots=True)
class AudioPart:
    """OpenAI `input_audio`: base64 audio and its format (`wav`, `mp3`)."""

    data: str
    format: str
    raw: dict[str, Any] | None = None
    wire: WireFormat | None = None


@dataclass(slots=True)
class OpaquePart:
    """A content block of one wire with no neutral meaning, kept verbatim (`block`)."""

    wire: WireFormat
    block: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.block.get("type", ""))


ResultContent: TypeAlias = "TextPart | ImagePart | DocumentPart | OpaquePart"
Part: TypeAlias = (
    TextPart
    | ImagePart
    | ToolCallPart
    | ToolResultPart
    | ThinkingPart
    | DocumentPart
    | AudioPart
    | OpaquePart
)


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part]
    name: str | None = None


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    cache_control: CacheControl | None = None
    strict: bool | None = None  # both APIs: the arguments must follow `parameters` exactly


@dataclass(slots=True)
class ToolChoice:
    """`auto`, `none`, `required` (any tool) or `tool` (the named one)."""

    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


@dataclass(slots=True)
class CallMeta:
    """How a call was made and what the caller says about it; filled by the front end from
    headers and body. Who the call belongs to (tenant, key, team, tier) is not here: that is
    `CallContext.identity`, resolved from the virtual key by the auth stage.

    Request labels (`user`, `feature`, `session`), one precedence rule for all of them, applied
    by the auth stage: the `x-sluice-<label>` header, else the body (`user`;
    `metadata.feature`; `metadata.session_id`), else, for `user` only, the virtual key's owner
    (`CallContext.end_user`). Each is at most 256 characters (400 otherwise).
    """

    request_id: str = ""
    wire: WireFormat = "openai"
    user: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    include_usage: bool = False  # OpenAI stream_options.include_usage
    # The name the caller gave its output cap (`max_tokens` / `max_completion_tokens`).
    max_tokens_field: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # x-sluice-* request headers
    # Client headers some provider is configured to forward upstream (`forward_headers`).
    forward_headers: dict[str, str] = field(default_factory=dict)
    traceparent: str | None = None  # W3C trace context to send upstream (tracing on)
    feature: str | None = None  # x-sluice-feature
    session: str | None = None  # x-sluice-session / metadata.session_id


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    system: list[TextPart] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    stream: bool = False
    # Tools of the caller's wire with no neutral form (Anthropic server tools such as
    # `web_search_*` / code execution, OpenAI `custom` tools), kept verbatim.
    native_tools: list[dict[str, Any]] = field(default_factory=list)
    # Fields of the caller's wire format that have no neutral meaning; forwarded
    # verbatim only when the upstream speaks the same format.
    extras: dict[str, Any] = field(default_factory=dict)
    meta: CallMeta = field(default_factory=CallMeta)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class RateLimitInfo:
    """What the upstream said about its limits, parsed from response headers."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    parts: list[Part]
    finish_reason: FinishReason = "stop"
    usage: Usage = field(default_factory=Usage)
    stop_sequence: str | None = None
    created: int = 0
    ratelimit: RateLimitInfo | None = None
    logprobs: list[float] | None = None  # per output token, when the provider returned them
    # OpenAI `choices[0].logprobs` as the upstream sent it (given back to OpenAI callers).
    logprobs_detail: dict[str, Any] | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
    served_by: str | None = None  # the upstream's own `model` value
    annotations: list[dict[str, Any]] | None = None  # OpenAI `message.annotations`


# --- stream events -------------------------------------------------------------------


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str
    created: int = 0
    usage: Usage | None = None  # Anthropic announces input usage up front
    ratelimit: RateLimitInfo | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


@dataclass(slots=True)
class BlockEvent:
    """A whole content block with no neutral meaning (an `OpaquePart`), e.g. Anthropic
    `server_tool_use`, `web_search_tool_result`, `redacted_thinking`."""

    part: OpaquePart


@dataclass(slots=True)
class CitationDelta:
    """A citation of the text being streamed (Anthropic `citations_delta`)."""

    citation: dict[str, Any]


@dataclass(slots=True)
class TextDelta:
    text: str
    logprobs: list[dict[str, Any]] | None = None  # OpenAI `logprobs.content` of this chunk


@dataclass(slots=True)
class ThinkingDelta:
    thinking: str
    signature: str | None = None


@dataclass(slots=True)
class ToolCallStart:
    index: int  # position among the tool calls of this answer, from 0
    id: str
    name: str


@dataclass(slots=True)
class ToolCallDelta:
    index: int
    arguments: str  # a fragment of the JSON argument text


@dataclass(slots=True)
class Finish:
    reason: FinishReason
    stop_sequence: str | None = None


@dataclass(slots=True)
class UsageUpdate:
    """Usage so far; later updates replace earlier ones."""

    usage: Usage


@dataclass(slots=True, frozen=True)
class Flush:
    """The upstream delivered everything it had for now: a good moment to write to the
    client. Lets the server send one write per upstream read instead of one per token."""


FLUSH = Flush()

StreamEvent: TypeAlias = (
    StreamStart
    | TextDelta
    | ThinkingDelta
    | ToolCallStart
    | ToolCallDelta
    | Finish
    | UsageUpdate
    | Flush
    | BlockEvent
    | CitationDelta
)


class EventStream(Protocol):
    """An async iterator of events that must be closed (`aclose`) when abandoned, so the
    upstream connection and any held resources are released. Async generators qualify."""

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    def __anext__(self) -> Awaitable[StreamEvent]: ...

    def aclose(self) -> Awaitable[None]: ...


# --- batches: the events of one network read in one await (issue 20) ----------------------
# A stream may also offer `next_batch()`: the events it has now (at least one; in order,
# FLUSH included) in a list, or StopAsyncIteration at its end. Every wrapper that offers it
# asks its inner stream with `next_batch(inner)`, so a read of ~30 tokens crosses the ~7
# layers between the provider and the server once, not once per token. A stream without it
# (an async generator) still works: it is read one event per batch. Mixing `__anext__` and
# `next_batch` on one stream is allowed; the order of events is kept.


async def next_batch(stream: EventStream) -> list[StreamEvent]:
    """The next events of `stream`: a batch when it offers one, else its next event."""
    batch = getattr(stream, "next_batch", None)
    if batch is not None:
        events: list[StreamEvent] = await batch()
        return events
    return [await anext(stream)]


class BatchStream:
    """An `EventStream` over an async generator of event lists (one per network read),
    with `next_batch` handing each list over whole."""

    __slots__ = ("_at", "_batches", "_buffer")

    def __init__(self, batches: AsyncIterator[list[StreamEvent]]) -> None:
        self._batches = batches
        self._buffer: list[StreamEvent] = []
        self._at = 0

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        while self._at >= len(self._buffer):
            self._buffer = await anext(self._batches)
            self._at = 0
        event = self._buffer[self._at]
        self._at += 1
        return event

    async def next_batch(self) -> list[StreamEvent]:
        if self._at < len(self._buffer):
            rest = self._buffer[self._at :] if self._at else self._buffer
            self._buffer, self._at = [], 0
            return rest
        while True:
            batch = await anext(self._batches)
            if batch:
                return batch

    async def aclose(self) -> None:
        self._buffer, self._at = [], 0
        close = getattr(self._batches, "aclose", None)
        if close is not None:
            await close()
