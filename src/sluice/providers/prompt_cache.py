"""Automatic Anthropic prompt-cache breakpoints on an encoded Messages API body.

Anthropic caches a prompt prefix only where a block carries `cache_control`, at most four
per request, and only when the prefix (tools → system → messages) reaches the model's
minimum (1024 tokens for Sonnet/Opus-class models, more for Haiku-class; see prices.yaml).
`add_breakpoints` marks, within what the caller left of the four:

1. the furthest *stable* boundary: the end of a message whose whole prefix was seen in
   another request within `PrefixMemory.window_s` (a growing conversation, a shared long
   document), else the end of the system prompt (or of the tools);
2. the end of the system prompt (or tools), which stays stable when the conversation changes;
3. further repeated message boundaries, furthest first.

Only boundaries whose prefix reaches `min_tokens` are marked (shorter ones are never
cached, and a write costs 1.25x). The caller's own breakpoints (on blocks, or a top-level
`cache_control`) are kept and counted. Token counts are the offline estimate of
`sluice.tokens` (the provider bills from its own count). Prefix digests ignore
`cache_control`, so the marks added here never change what is recognised next time.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from sluice.tokens import MESSAGE_OVERHEAD, REQUEST_OVERHEAD, count_text

MAX_BREAKPOINTS = 4
EPHEMERAL: dict[str, str] = {"type": "ephemeral"}
DEFAULT_MIN_TOKENS = 1024
_MARKABLE = frozenset({"text", "image", "tool_use", "tool_result", "document"})


class PrefixMemory:
    """Digests of prompt prefixes seen recently: a bounded LRU with a time window."""

    __slots__ = ("_clock", "_seen", "max_entries", "window_s")

    def __init__(
        self,
        max_entries: int = 4096,
        window_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.window_s = window_s
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, digest: bytes) -> bool:
        at = self._seen.get(digest)
        return at is not None and self._clock() - at <= self.window_s

    def remember(self, digest: bytes) -> None:
        self._seen[digest] = self._clock()
        self._seen.move_to_end(digest)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)


@dataclass(slots=True)
class _Boundary:
    kind: str  # "head" (end of tools/system) or "message"
    tokens: int
    digest: bytes
    block: dict[str, Any] | None  # where a breakpoint would go (None: nothing markable)
    stable: bool


def count_breakpoints(body: dict[str, Any]) -> int:
    """Breakpoints already in a body: marked blocks (tool-result contents included) and a
    top-level `cache_control`."""
    return int(isinstance(body.get("cache_control"), dict)) + sum(
        1 for block in _all_blocks(body) if isinstance(block.get("cache_control"), dict)
    )


def add_breakpoints(body: dict[str, Any], min_tokens: int, memory: PrefixMemory) -> int:
    """Mark stable prefixes of `body` (in place); how many breakpoints were added."""
    if len(orjson.dumps(body)) < min_tokens:
        return 0  # an estimate is at most one token per character: nothing can qualify
    free = MAX_BREAKPOINTS - count_breakpoints(body)
    boundaries = _boundaries(body, min_tokens)
    for b in boundaries:
        if b.kind == "message" and b.tokens >= min_tokens:
            b.stable = memory.seen(b.digest)  # seen in an *earlier* request ...
            memory.remember(b.digest)  # ... then remembered for the next one
    if free <= 0:
        return 0
    usable = [
        b
        for b in boundaries
        if b.stable
        and b.tokens >= min_tokens
        and b.block is not None
        and "cache_control" not in b.block
    ]
    chosen: list[_Boundary] = []
    if usable:
        chosen.append(usable[-1])
        head = next((b for b in usable if b.kind == "head"), None)
        if head is not None and head is not usable[-1]:
            chosen.append(head)
        chosen += [b for b in reversed(usable) if b not in chosen]
    for b in chosen[:free]:
        assert b.block is not None
        b.block["cache_control"] = dict(EPHEMERAL)
    return min(len(chosen), free)


def _boundaries(body: dict[str, Any], min_tokens: int) -> list[_Boundary]:
    """Every place a breakpoint could go, with the digest of the prefix up to it and its
    estimated tokens. Counting stops once past `min_tokens` (all that is asked of the count
    is whether it reaches it; counting is the slow part on long prompts), so later counts
    are lower bounds."""
    h = hashlib.blake2b(str(body.get("model")).encode(), digest_size=16)
    out: list[_Boundary] = []
    counter = _Counter(min_tokens)
    tools = body.get("tools")
    last_tool: dict[str, Any] | None = None
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict):
            h.update(_digestable(tool))
            if counter.open:
                counter.add(orjson.dumps(_tool_spec(tool), option=orjson.OPT_SORT_KEYS).decode())
            last_tool = tool
    head_block: dict[str, Any] | None = last_tool
    system = body.get("system")
    if isinstance(system, str) and system:
        counter.tokens += MESSAGE_OVERHEAD
        whole = _LazyText(system, lambda block: body.__setitem__("system", [block]))
        h.update(b"\x02" + _digestable(whole))
        counter.add(system)
        head_block = whole
    elif isinstance(system, list) and system:
        counter.tokens += MESSAGE_OVERHEAD
        for block in system:
            if isinstance(block, dict):
                h.update(b"\x02" + _digestable(block))
                counter.add_block(block)
                head_block = block if _markable(block) else head_block
    if head_block is not None:
        out.append(_Boundary("head", counter.tokens, h.copy().digest(), head_block, True))
    messages = body.get("messages")
    for msg in messages if isinstance(messages, list) else ():
        if not isinstance(msg, dict):
            continue
        counter.tokens += MESSAGE_OVERHEAD
        content = msg.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        h.update(b"\x01" + str(msg.get("role")).encode())
        mark: dict[str, Any] | None = None
        for block in blocks if isinstance(blocks, list) else ():
            if isinstance(block, dict):
                h.update(_digestable(block))
                counter.add_block(block)
                mark = block if _markable(block) else mark
        if isinstance(content, str) and mark is not None:
            mark = _LazyText(content, _set_content(msg))
        out.append(_Boundary("message", counter.tokens, h.copy().digest(), mark, False))
    return out


class _Counter:
    """A running token estimate that stops counting once past `limit`."""

    __slots__ = ("limit", "tokens")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.tokens = REQUEST_OVERHEAD

    @property
    def open(self) -> bool:
        return self.tokens < self.limit

    def add(self, text: str) -> None:
        """Count `text` in pieces just long enough to reach the limit (an estimate gives at
        most one token per character), cut at spaces so no word is split."""
        while text and self.tokens < self.limit:
            size = 4 * (self.limit - self.tokens) + 64
            cut = len(text) if len(text) <= size else text.rfind(" ", size // 2, size)
            cut = size if cut <= 0 else cut
            self.tokens += count_text(text[:cut])
            text = text[cut:]

    def add_block(self, block: dict[str, Any]) -> None:
        for text in _texts(block):
            self.add(text)


class _LazyText(dict[str, Any]):
    """A plain-string system prompt or message content seen as one text block: written
    into the body as a block list only when a breakpoint is set on it, so unmarked bodies
    are sent unchanged."""

    def __init__(self, text: str, install: Callable[[dict[str, Any]], None]) -> None:
        super().__init__(type="text", text=text)
        self._install = install

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._install(dict(self))


def _set_content(msg: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda block: msg.__setitem__("content", [block])


def _digestable(block: dict[str, Any]) -> bytes:
    if "cache_control" in block:
        block = {k: v for k, v in block.items() if k != "cache_control"}
    return orjson.dumps(block, option=orjson.OPT_SORT_KEYS)


def _tool_spec(tool: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": tool.get("name"), "parameters": tool.get("input_schema")}
    if tool.get("description") is not None:
        spec["description"] = tool["description"]
    return spec


def _markable(block: dict[str, Any]) -> bool:
    if block.get("type") not in _MARKABLE:
        return False
    return block.get("type") != "text" or bool(block.get("text"))


def _texts(block: dict[str, Any]) -> Iterator[str]:
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        yield block["text"]
    elif kind == "tool_use":
        yield orjson.dumps(block.get("input", {})).decode()
    elif kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for inner in content:
                if isinstance(inner, dict):
                    yield from _texts(inner)


def _all_blocks(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("tools", "system"):
        items = body.get(key)
        if isinstance(items, list):
            yield from (b for b in items if isinstance(b, dict))
    messages = body.get("messages")
    for msg in messages if isinstance(messages, list) else ():
        content = msg.get("content") if isinstance(msg, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict):
                yield block
                inner = block.get("content")
                if block.get("type") == "tool_result" and isinstance(inner, list):
                    yield from (b for b in inner if isinstance(b, dict))
