"""The built-in checks: input limits, the texts of a request by source, output checks.

Pure functions over the neutral types, so the guard stage stays a thin policy layer and
each check is unit-testable without a gateway.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass

from sluice.guardrails.config import InputLimitsConfig
from sluice.guardrails.pii import find
from sluice.tokens import estimate_request_tokens
from sluice.types import (
    AudioPart,
    ChatRequest,
    DocumentPart,
    ImagePart,
    OpaquePart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)


@dataclass(frozen=True, slots=True)
class LimitHit:
    """An input limit that was passed: `rule` names it, `too_large` → 413 (else 400)."""

    rule: str
    message: str
    too_large: bool


def _data_url_bytes(url: str) -> int | None:
    """The decoded size of a `data:...;base64,` URL (None: not a data URL)."""
    if not url.startswith("data:"):
        return None
    comma = url.find(",")
    if comma == -1:
        return 0
    payload = url[comma + 1 :]
    if ";base64" not in url[:comma]:
        return len(payload.encode())
    stripped = payload.rstrip("=")
    return len(stripped) * 3 // 4


def content_kinds(req: ChatRequest) -> Iterator[tuple[str, object]]:
    """(kind, part) for every content part the caller sent: text, image, file, audio."""
    for msg in req.messages:
        for part in msg.parts:
            if isinstance(part, ToolResultPart):
                for inner in part.content:
                    yield _kind(inner), inner
            else:
                yield _kind(part), part


def _kind(part: object) -> str:
    if isinstance(part, ImagePart):
        return "image"
    if isinstance(part, DocumentPart):
        return "file"
    if isinstance(part, AudioPart):
        return "audio"
    if isinstance(part, OpaquePart):
        kind = part.kind
        return "image" if "image" in kind else "file" if kind in ("document", "file") else "text"
    return "text"


def text_bytes(req: ChatRequest) -> int:
    """UTF-8 bytes of every text the request carries (system, messages, tool results, earlier
    tool calls' arguments, tool definitions' descriptions)."""
    total = sum(len(t.encode()) for t, _ in request_texts(req, include_system=True))
    # Earlier tool calls' arguments go upstream and are masked too: text hidden there must
    # count against the limit and the PII scan's bound.
    total += sum(
        len(item.arguments.encode())
        for msg in req.messages
        for item in msg.parts
        if isinstance(item, ToolCallPart)
    )
    return total + sum(len((tool.description or "").encode()) for tool in req.tools)


def check_limits(cfg: InputLimitsConfig, req: ChatRequest) -> LimitHit | None:
    """The first input limit `req` passes, or None."""
    if cfg.max_messages is not None and len(req.messages) > cfg.max_messages:
        return LimitHit(
            "max_messages",
            f"the request has {len(req.messages)} messages; at most {cfg.max_messages} are allowed",
            False,
        )
    tools = len(req.tools) + len(req.native_tools)
    if cfg.max_tools is not None and tools > cfg.max_tools:
        return LimitHit(
            "max_tools", f"the request defines {tools} tools; at most {cfg.max_tools}", False
        )
    allowed = cfg.allowed_content
    if allowed is not None or cfg.max_image_bytes is not None:
        for kind, part in content_kinds(req):
            if allowed is not None and kind not in allowed:
                return LimitHit(
                    "content_type",
                    f"{kind} content is not allowed here (allowed: {', '.join(allowed)})",
                    False,
                )
            if kind == "image" and cfg.max_image_bytes is not None:
                size = _data_url_bytes(part.url) if isinstance(part, ImagePart) else None
                if size is not None and size > cfg.max_image_bytes:
                    return LimitHit(
                        "max_image_bytes",
                        f"an image is {size} bytes; at most {cfg.max_image_bytes} are allowed",
                        True,
                    )
    if cfg.max_input_bytes is not None:
        size = text_bytes(req)
        if size > cfg.max_input_bytes:
            return LimitHit(
                "max_input_bytes",
                f"the input text is {size} bytes; at most {cfg.max_input_bytes} are allowed",
                True,
            )
    if cfg.max_input_tokens is not None:
        tokens = estimate_request_tokens(req)
        if tokens > cfg.max_input_tokens:
            return LimitHit(
                "max_input_tokens",
                f"the input is about {tokens} tokens; at most {cfg.max_input_tokens} are allowed",
                True,
            )
    return None


def request_texts(req: ChatRequest, *, include_system: bool) -> Iterator[tuple[str, str]]:
    """(text, source) for each text of a request: "system", "user" (user turns), "tool"
    (tool results), "document" (plain-text documents), "assistant" (earlier answers)."""
    if include_system:
        for sys_part in req.system:
            yield sys_part.text, "system"
    for msg in req.messages:
        source = _SOURCE[msg.role]
        for item in msg.parts:
            if isinstance(item, TextPart):
                yield item.text, source
            elif isinstance(item, ToolResultPart):
                for inner in item.content:
                    if isinstance(inner, TextPart):
                        yield inner.text, "tool"
                    elif isinstance(inner, DocumentPart):
                        text = _document_text(inner)
                        if text:
                            yield text, "document"
            elif isinstance(item, DocumentPart):
                text = _document_text(item)
                if text:
                    yield text, "document"


_SOURCE = {"user": "user", "assistant": "assistant", "tool": "tool"}


def is_plain_text(media_type: str | None) -> bool:
    """None or text/plain, whatever its case and parameters (`text/plain; charset=utf-8`)."""
    return media_type is None or media_type.split(";", 1)[0].strip().lower() == "text/plain"


def _document_text(part: DocumentPart) -> str | None:
    """A plain-text document's text (PDFs and file ids are not read here)."""
    if part.data is None or not is_plain_text(part.media_type):
        return None
    if part.kind == "search_result":
        return part.data
    try:  # base64 text (an Anthropic `base64` source, an OpenAI data URL) is read decoded
        return base64.b64decode(part.data, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return part.data


# --- output checks ----------------------------------------------------------------------

_WORD = re.compile(r"\w+")


class LeakDetector:
    """Whether an answer repeats `words` words in a row of the system prompt (case and
    punctuation ignored): word shingles of the prompt in a set, the answer's looked up
    (only where its first two words are a pair the prompt has)."""

    __slots__ = ("_n", "_pairs", "_shingles")

    def __init__(self, system_text: str, words: int) -> None:
        self._n = words
        tokens = [w.lower() for w in _WORD.findall(system_text)]
        count = len(tokens) - words + 1
        self._shingles = {" ".join(tokens[i : i + words]) for i in range(count)}
        self._pairs = {(tokens[i], tokens[i + 1]) for i in range(count)}

    def __bool__(self) -> bool:
        return bool(self._shingles)

    def leaks(self, answer: str) -> bool:
        if not self._shingles:
            return False
        return self._hits([w.lower() for w in _WORD.findall(answer)])

    def leaks_since(self, text: str, start: int) -> tuple[bool, int]:
        """`leaks(text[start:])` for a text that grows (a stream), and where the next call
        should start: at its last `words - 1` words (the last may be cut mid-word), so
        every run of `words` words is looked at once it is whole, and no word twice more."""
        matches = list(_WORD.finditer(text, start))
        n = self._n
        nxt = matches[-(n - 1)].start() if len(matches) >= n - 1 else start
        if len(matches) < n or not self._shingles:
            return False, nxt
        return self._hits([m.group().lower() for m in matches]), nxt

    def _hits(self, tokens: list[str]) -> bool:
        n, pairs, shingles = self._n, self._pairs, self._shingles
        for i in range(len(tokens) - n + 1):
            if (tokens[i], tokens[i + 1]) in pairs and " ".join(tokens[i : i + n]) in shingles:
                return True
        return False


def has_secret(text: str) -> bool:
    return bool(find(text, frozenset({"SECRET"})))


def sanitize_html(text: str) -> str:
    """Answer text safe to render as HTML: scripts, event handlers and `javascript:` URLs
    removed, harmless markup kept (nh3, the Rust ammonia sanitizer)."""
    if "<" not in text and "&" not in text:
        return text
    import nh3  # imported only when HTML sanitizing is on

    return nh3.clean(text)


_TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)[^<>]*?(/?)>")
_VOID = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
    ]
)


def html_safe_cut(text: str, cut: int, limit: int) -> int:
    """Where a streamed piece of HTML may end: before a tag still open at `cut` (`<b` or a
    `<script>` whose `</script>` has not come yet), so each piece is sanitized whole. An
    element held longer than `limit` characters is let go (sanitized as it is)."""
    at = text.rfind("<", 0, cut)
    if at != -1 and text.find(">", at, cut) == -1:
        cut = at
    stack: list[tuple[str, int]] = []
    for m in _TAG.finditer(text, 0, cut):
        closing, name, selfclosing = m.group(1), m.group(2).lower(), m.group(3)
        if closing:
            for i in range(len(stack) - 1, -1, -1):
                if stack[i][0] == name:
                    del stack[i:]
                    break
        elif not selfclosing and name not in _VOID:
            stack.append((name, m.start()))
    if stack and cut - stack[0][1] <= limit:
        return stack[0][1]
    return cut
