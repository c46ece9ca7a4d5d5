"""Where cache and idempotency entries live, and how a stored answer is encoded.

`CacheBackend` is four async calls over opaque bytes with a time to live; `add` is
set-if-absent, which is what makes idempotency locks safe across processes. `MemoryBackend`
is a bounded LRU for one process; `RedisBackend` shares entries between gateway processes.

Both also keep *tags* (`TaggedBackend`): an entry stored with `set_tagged` can be found again
by any of its tags (`exact`, `route:<name>`, `tenant:<id>`) to purge or count. Memory keeps
dicts; Redis keeps one sorted set per tag (member: key, score: expiry in ms), trimmed of
expired members on every write and itself expiring with its longest-lived member.

A stored answer is one orjson document: the neutral `ChatResponse` (every part type, finish
reason, stop sequence, usage) and the wall-clock time it was stored. Upstream rate-limit
information is not stored: it described the upstream at that moment, not the answer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

import orjson

from sluice.state import redis as redis_pools
from sluice.types import (
    ChatResponse,
    FinishReason,
    ImagePart,
    OpaquePart,
    Part,
    ResultContent,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

BLOB_VERSION = 1


class CacheBackend(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def add(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Store only when the key is absent (or expired); True when stored."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class TaggedBackend(CacheBackend, Protocol):
    """A backend that can find entries again by tag (purge by route or tenant, stats)."""

    async def set_tagged(
        self, key: str, value: bytes, ttl_s: float, tags: Sequence[str]
    ) -> None: ...

    async def purge_tag(self, tag: str) -> int:
        """Delete every live entry carrying `tag`; how many there were."""
        ...

    async def tag_usage(self, tag: str) -> tuple[int, int]:
        """(live entries, bytes of keys + values) carrying `tag`."""
        ...

    async def pop(self, key: str) -> bool:
        """Delete `key`; True when it was there (and live)."""
        ...


# Called on every stored entry (value, expiry on the backend's clock, tags) and on every
# removal (value None): what `sluice.cache.persist` needs to mirror entries to disk.
ChangeListener = Callable[[str, bytes | None, float, tuple[str, ...]], None]


# --- memory --------------------------------------------------------------------------


class MemoryBackend:
    """A per-process LRU bounded by entry count and by total bytes (keys + values).

    Expiry is checked on read against an injectable monotonic clock; an expired entry is
    dropped when it is seen, and old entries fall off the LRU end under pressure.
    """

    def __init__(
        self,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._bytes = 0
        self._tags_of: dict[str, tuple[str, ...]] = {}
        self._keys_by_tag: dict[str, set[str]] = {}
        self.listener: ChangeListener | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        return self._bytes

    async def get(self, key: str) -> bytes | None:
        entry = self._live(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        self._put(key, value, ttl_s)

    async def set_tagged(self, key: str, value: bytes, ttl_s: float, tags: Sequence[str]) -> None:
        self._put(key, value, ttl_s, tuple(tags))

    async def add(self, key: str, value: bytes, ttl_s: float) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, value, ttl_s)
        return True

    async def renew(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Extend the entry's life to `ttl_s` from now only while it still holds `value`."""
        entry = self._live(key)
        if entry is None or entry[0] != value:
            return False
        self._put(key, value, ttl_s)
        return True

    async def delete(self, key: str) -> None:
        self._drop(key)

    async def pop(self, key: str) -> bool:
        live = self._live(key) is not None
        self._drop(key)
        return live

    async def purge_tag(self, tag: str) -> int:
        live = [k for k in list(self._keys_by_tag.get(tag, ())) if self._live(k) is not None]
        for key in live:
            self._drop(key)
        return len(live)

    async def tag_usage(self, tag: str) -> tuple[int, int]:
        live = [(k, e) for k in list(self._keys_by_tag.get(tag, ())) if (e := self._live(k))]
        return len(live), sum(len(k) + len(e[0]) for k, e in live)

    def restore(self, key: str, value: bytes, expires_at: float, tags: Iterable[str]) -> None:
        """Put back an entry read from disk (expiry on this backend's clock)."""
        self._put(key, value, expires_at - self._clock(), tuple(tags), notify=False)

    async def close(self) -> None:
        self._entries.clear()
        self._tags_of.clear()
        self._keys_by_tag.clear()
        self._bytes = 0

    def _live(self, key: str) -> tuple[bytes, float] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[1] <= self._clock():
            self._drop(key)
            return None
        return entry

    def _put(
        self,
        key: str,
        value: bytes,
        ttl_s: float,
        tags: tuple[str, ...] = (),
        *,
        notify: bool = True,
    ) -> None:
        self._drop(key, notify=notify)
        size = len(key) + len(value)
        if size > self.max_bytes or ttl_s <= 0:
            return  # could never fit (or already expired): not stored
        expires = self._clock() + ttl_s
        self._entries[key] = (value, expires)
        self._bytes += size
        if tags:
            self._tags_of[key] = tags
            for tag in tags:
                self._keys_by_tag.setdefault(tag, set()).add(key)
            if notify and self.listener is not None:
                self.listener(key, value, expires, tags)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str, *, notify: bool = True) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._bytes -= len(key) + len(entry[0])
        tags = self._tags_of.pop(key, ())
        for tag in tags:
            keys = self._keys_by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_by_tag[tag]
        if tags and notify and self.listener is not None:
            self.listener(key, None, 0.0, tags)


# --- redis ---------------------------------------------------------------------------


_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class RedisBackend:
    """A `redis.asyncio` client on the process's shared pool for the URL
    (`sluice.state.redis`); every key under `prefix`."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "sluice:",
        *,
        client: Redis | None = None,
    ) -> None:
        self._shared = client is None  # on the process's pool for `url` (sluice.state.redis)
        if client is None:
            client = redis_pools.client(url)
        self._client = client
        self.prefix = prefix

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self.prefix + key)
        if value is None or isinstance(value, bytes):
            return value
        return value.encode()  # only when the client was built with decode_responses

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._client.set(self.prefix + key, value, px=_ms(ttl_s))

    async def add(self, key: str, value: bytes, ttl_s: float) -> bool:
        # SET NX PX: atomic set-if-absent with expiry.
        return bool(await self._client.set(self.prefix + key, value, px=_ms(ttl_s), nx=True))

    async def renew(self, key: str, value: bytes, ttl_s: float) -> bool:
        """Extend the entry's life to `ttl_s` from now only while it still holds `value`
        (one script: a renewal never outlives, or shortens, an answer stored meanwhile)."""
        done = await self._client.eval(_RENEW, 1, self.prefix + key, value, _ms(ttl_s))
        return bool(done)

    async def delete(self, key: str) -> None:
        await self._client.delete(self.prefix + key)

    async def pop(self, key: str) -> bool:
        return bool(await self._client.delete(self.prefix + key))

    async def set_tagged(self, key: str, value: bytes, ttl_s: float, tags: Sequence[str]) -> None:
        ms = _ms(ttl_s)
        now_ms = int(time.time() * 1000)
        pipe = self._client.pipeline(transaction=False)
        pipe.set(self.prefix + key, value, px=ms)
        for tag in tags:
            index = self._tag_key(tag)
            pipe.zadd(index, {key: now_ms + ms})
            pipe.zremrangebyscore(index, "-inf", now_ms)
            pipe.pexpire(index, ms, nx=True)  # a new index gets an expiry ...
            pipe.pexpire(index, ms, gt=True)  # ... an old one only ever a later one
        await pipe.execute()

    async def purge_tag(self, tag: str) -> int:
        index = self._tag_key(tag)
        members = await self._client.zrange(index, 0, -1)
        removed = 0
        for start in range(0, len(members), 500):
            batch = [self.prefix + _text(m) for m in members[start : start + 500]]
            removed += int(await self._client.delete(*batch))
        await self._client.delete(index)
        return removed

    async def tag_usage(self, tag: str) -> tuple[int, int]:
        index = self._tag_key(tag)
        await self._client.zremrangebyscore(index, "-inf", int(time.time() * 1000))
        members = [_text(m) for m in await self._client.zrange(index, 0, -1)]
        entries = size = 0
        gone: list[str] = []
        for start in range(0, len(members), 500):
            batch = members[start : start + 500]
            pipe = self._client.pipeline(transaction=False)
            for key in batch:
                pipe.strlen(self.prefix + key)
            for key, length in zip(batch, await pipe.execute(), strict=True):
                if length:
                    entries += 1
                    size += len(key) + int(length)
                else:
                    gone.append(key)  # purged through another tag, or evicted
        if gone:
            await self._client.zrem(index, *gone)
        return entries, size

    def _tag_key(self, tag: str) -> str:
        return f"{self.prefix}tag:{tag}"

    async def clear(self) -> int:
        """Delete every key under the prefix (tests, admin); returns how many."""
        removed = 0
        batch: list[bytes] = []
        async for key in self._client.scan_iter(match=_glob_escape(self.prefix) + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                removed += int(await self._client.delete(*batch))
                batch.clear()
        if batch:
            removed += int(await self._client.delete(*batch))
        return removed

    async def close(self) -> None:
        if self._shared:
            await redis_pools.release(self._client)
        else:
            await self._client.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(ttl_s: float) -> int:
    return max(1, round(ttl_s * 1000))


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


# --- the stored answer ---------------------------------------------------------------


def encode_response_blob(
    resp: ChatResponse, stored_at: float, cost_usd: Decimal | None = None
) -> bytes:
    """`cost_usd`: what producing the answer cost, so a hit can say what it saved."""
    doc: dict[str, Any] = {"v": BLOB_VERSION, "at": stored_at, "r": response_to_json(resp)}
    if cost_usd is not None:
        doc["c"] = str(cost_usd)
    return orjson.dumps(doc)


def decode_response_blob(blob: bytes) -> tuple[ChatResponse, float]:
    """The stored answer and its wall-clock store time; ValueError when unreadable."""
    doc = orjson.loads(blob)
    if not isinstance(doc, dict) or doc.get("v") != BLOB_VERSION:
        raise ValueError("not a cache blob of this version")
    return response_from_json(doc["r"]), float(doc["at"])


def decode_blob_cost(blob: bytes) -> Decimal | None:
    """The first call's cost stored with an answer (None: not stored, entries from before)."""
    try:
        doc = orjson.loads(blob)
        return Decimal(doc["c"]) if isinstance(doc, dict) and "c" in doc else None
    except (orjson.JSONDecodeError, ArithmeticError, TypeError, ValueError):
        return None


def response_to_json(resp: ChatResponse) -> dict[str, Any]:
    u = resp.usage
    return {
        "id": resp.id,
        "model": resp.model,
        "parts": [part_to_json(p) for p in resp.parts],
        "finish": resp.finish_reason,
        "stop_seq": resp.stop_sequence,
        "created": resp.created,
        "usage": [u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens],
    }


def response_from_json(doc: dict[str, Any]) -> ChatResponse:
    try:
        i, o, r, w = doc["usage"]
        return ChatResponse(
            id=doc["id"],
            model=doc["model"],
            parts=[part_from_json(p) for p in doc["parts"]],
            finish_reason=cast(FinishReason, doc["finish"]),
            usage=Usage(int(i), int(o), int(r), int(w)),
            stop_sequence=doc["stop_seq"],
            created=int(doc["created"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed stored response: {exc!r}") from None


def part_to_json(part: Part) -> dict[str, Any]:
    """A neutral part as stored JSON (cached answers here, session histories in
    `sluice.context.sessions`); `part_from_json` reads it back."""
    if isinstance(part, TextPart):
        doc: dict[str, Any] = {"t": "text", "text": part.text, "cc": part.cache_control}
        if part.citations:
            doc["cit"] = part.citations
        return doc
    if isinstance(part, OpaquePart):
        return {"t": "opaque", "wire": part.wire, "block": part.block}
    if isinstance(part, ToolCallPart):
        return {
            "t": "tool_call",
            "id": part.id,
            "name": part.name,
            "args": part.arguments,
            "cc": part.cache_control,
        }
    if isinstance(part, ThinkingPart):
        return {"t": "thinking", "thinking": part.thinking, "sig": part.signature}
    if isinstance(part, ImagePart):
        return {"t": "image", "url": part.url, "detail": part.detail, "cc": part.cache_control}
    if isinstance(part, ToolResultPart):
        return {
            "t": "tool_result",
            "id": part.tool_call_id,
            "content": [part_to_json(p) for p in part.content],
            "err": part.is_error,
            "cc": part.cache_control,
        }
    raise TypeError(f"unknown part type {type(part).__name__}")  # pragma: no cover


def part_from_json(doc: dict[str, Any]) -> Part:
    kind = doc["t"]
    if kind == "text":
        return TextPart(doc["text"], doc["cc"], doc.get("cit"))
    if kind == "opaque":
        return OpaquePart(doc["wire"], doc["block"])
    if kind == "tool_call":
        return ToolCallPart(doc["id"], doc["name"], doc["args"], doc["cc"])
    if kind == "thinking":
        return ThinkingPart(doc["thinking"], doc["sig"])
    if kind == "image":
        return ImagePart(doc["url"], doc["detail"], doc["cc"])
    if kind == "tool_result":
        content = [part_from_json(p) for p in doc["content"]]
        if not all(isinstance(p, TextPart | ImagePart | OpaquePart) for p in content):
            raise ValueError("tool result content must be text or images")
        return ToolResultPart(
            doc["id"],
            cast(list[ResultContent], content),
            bool(doc["err"]),
            doc["cc"],
        )
    raise ValueError(f"unknown stored part type {kind!r}")
