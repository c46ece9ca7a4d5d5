"""MemoryBackend (LRU by count and bytes, TTL on read) and the stored-answer blob."""

from __future__ import annotations

import pytest
from hypothesis import given

from sluice.cache.backends import (
    CacheBackend,
    MemoryBackend,
    RedisBackend,
    decode_response_blob,
    encode_response_blob,
)
from sluice.types import (
    ChatResponse,
    ImagePart,
    RateLimitInfo,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from tests.unit.strategies import anthropic_responses, openai_responses


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_both_backends_satisfy_the_protocol() -> None:
    backends: list[CacheBackend] = [MemoryBackend(), RedisBackend()]
    assert len(backends) == 2


async def test_get_set_delete_and_ttl_on_read() -> None:
    clock = Clock()
    mem = MemoryBackend(clock=clock)
    assert await mem.get("k") is None
    await mem.set("k", b"v", ttl_s=10)
    assert await mem.get("k") == b"v"
    clock.now += 9.9
    assert await mem.get("k") == b"v"
    clock.now += 0.1
    assert await mem.get("k") is None
    assert len(mem) == 0 and mem.total_bytes == 0
    await mem.set("k", b"v", ttl_s=10)
    await mem.delete("k")
    await mem.delete("never-there")
    assert await mem.get("k") is None


async def test_add_is_set_if_absent_and_honours_expiry() -> None:
    clock = Clock()
    mem = MemoryBackend(clock=clock)
    assert await mem.add("k", b"first", 5)
    assert not await mem.add("k", b"second", 5)
    assert await mem.get("k") == b"first"
    clock.now += 5
    assert await mem.add("k", b"third", 5)  # the first one expired
    assert await mem.get("k") == b"third"


async def test_lru_bound_by_entry_count() -> None:
    mem = MemoryBackend(max_entries=3)
    for k in "abc":
        await mem.set(k, b"x", 60)
    assert await mem.get("a") == b"x"  # a is now the most recently used
    await mem.set("d", b"x", 60)
    assert await mem.get("b") is None
    assert [await mem.get(k) for k in "acd"] == [b"x"] * 3
    assert len(mem) == 3


async def test_lru_bound_by_total_bytes() -> None:
    mem = MemoryBackend(max_bytes=100)
    await mem.set("a", b"x" * 39, 60)  # 40 bytes with the key
    await mem.set("b", b"x" * 39, 60)
    await mem.set("c", b"x" * 39, 60)  # 120 > 100: a goes
    assert await mem.get("a") is None
    assert mem.total_bytes == 80
    await mem.set("huge", b"x" * 200, 60)  # never fits: not stored, nothing evicted
    assert await mem.get("huge") is None
    assert mem.total_bytes == 80
    await mem.set("b", b"y", 60)  # replacing frees the old value's bytes
    assert mem.total_bytes == 42


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryBackend(max_entries=0)


@given(openai_responses() | anthropic_responses())
def test_blob_round_trips_generated_responses(resp: ChatResponse) -> None:
    back, stored_at = decode_response_blob(encode_response_blob(resp, 1234.5))
    assert back == resp
    assert stored_at == 1234.5


def test_blob_round_trips_every_part_type_and_usage() -> None:
    resp = ChatResponse(
        id="r1",
        model="m",
        parts=[
            TextPart("héllo ✓", {"type": "ephemeral"}),
            ThinkingPart("hmm", "sig"),
            ThinkingPart("unsigned"),
            ToolCallPart("c1", "f", '{"a": [1, 2.5, null]}'),
            ToolCallPart("c2", "g", "not json", {"type": "ephemeral"}),
            ImagePart("data:image/png;base64,AAAA", "high"),
            ToolResultPart("c1", [TextPart("ok"), ImagePart("https://x/y.png")], True),
        ],
        finish_reason="stop_sequence",
        usage=Usage(1000, 20, 300, 40),
        stop_sequence="END",
        created=1_700_000_000,
    )
    back, _ = decode_response_blob(encode_response_blob(resp, 1.0))
    assert back == resp
    # Upstream rate-limit info describes the moment, not the answer: not stored.
    resp.ratelimit = RateLimitInfo(limit_requests=5)
    back, _ = decode_response_blob(encode_response_blob(resp, 1.0))
    assert back.ratelimit is None


@pytest.mark.parametrize(
    "blob",
    [b"[]", b'{"v": 99}', b'{"v": 1, "at": 1, "r": {"id": "x"}}', b"not json"],
)
def test_unreadable_blobs_raise_value_error(blob: bytes) -> None:
    with pytest.raises(ValueError):
        decode_response_blob(blob)
