"""The OpenAI provider's stream loop over already-parsed SSE events (no network): a bad
event mid-stream, a stream without a finish, the upstream's rate limit on the start."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson

from sluice.config import DeploymentConfig, OpenAIProviderConfig
from sluice.errors import UpstreamConnectError, UpstreamMalformedError
from sluice.providers.base import Deployment
from sluice.providers.http import SSEEvent
from sluice.providers.openai import OpenAIProvider
from sluice.types import ChatRequest, Message, StreamEvent, StreamStart, TextDelta, TextPart


def _chunk(content: str, finish: str | None = None) -> SSEEvent:
    choice = {"index": 0, "delta": {"content": content}, "finish_reason": finish}
    return SSEEvent(None, orjson.dumps({"id": "c", "choices": [choice]}).decode())


class _Client:
    def __init__(self, batches: list[list[SSEEvent]], headers: dict[str, str]) -> None:
        self._batches, self._headers = batches, headers

    @contextlib.asynccontextmanager
    async def open_stream(self, *_: Any) -> AsyncIterator[tuple[Any, Any]]:
        async def batches() -> AsyncIterator[list[SSEEvent]]:
            for batch in self._batches:
                yield batch

        yield self._headers, batches()

    async def close(self) -> None:
        pass


async def _run(
    batches: list[list[SSEEvent]], headers: dict[str, str] | None = None
) -> tuple[list[StreamEvent], BaseException | None]:
    provider = OpenAIProvider("o", OpenAIProviderConfig(kind="openai", api_base="http://x/v1"))
    provider._client = _Client(batches, headers or {})  # type: ignore[assignment]
    dep = Deployment.from_config(DeploymentConfig(id="d", provider="o", model="m"))
    req = ChatRequest("m", [Message("user", [TextPart("hi")])], stream=True)
    seen: list[StreamEvent] = []
    try:
        async for event in provider.stream(req, dep):
            seen.append(event)
    except Exception as exc:
        return seen, exc
    return seen, None


def _texts(events: list[StreamEvent]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


async def test_a_bad_event_mid_read_comes_after_what_arrived_before_it() -> None:
    seen, err = await _run([[_chunk("a")], [_chunk("b"), SSEEvent(None, "{nope"), _chunk("c")]])
    assert _texts(seen) == ["a", "b"]
    assert isinstance(err, UpstreamMalformedError)
    assert err.message == "upstream d sent a stream event that is not JSON"


async def test_a_stream_without_a_finish_is_an_error_and_one_with_it_carries_the_rate_limit() -> (
    None
):
    seen, err = await _run([[_chunk("a")], [_chunk("b")]])
    assert _texts(seen) == ["a", "b"] and isinstance(err, UpstreamConnectError)
    headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59"}
    seen, err = await _run([[_chunk("a"), _chunk("", "stop")], [SSEEvent(None, "[DONE]")]], headers)
    assert err is None and _texts(seen) == ["a"]
    start = seen[0]
    assert isinstance(start, StreamStart) and start.ratelimit is not None
    assert start.ratelimit.limit_requests == 60
