"""PII masking that restores: placeholders out, originals back in — JSON and streams.

`Masker` belongs to one call (it is built by the guard stage for the call and dropped with
it): the mapping placeholder → original lives only in this object, never in a log, a record,
a cache or another process. So another tenant's call — or the same tenant's next call —
can never restore this call's values.

Placeholders are `<ENTITY_N>`: the same value gets the same placeholder within a call, so the
model can still tell "the same e-mail address twice" from two addresses. A number already
used by a placeholder-shaped text in the caller's own input is skipped, so restoring never
turns the caller's literal `<EMAIL_1>` into someone's address.

`StreamRestorer` restores placeholders in text that arrives in pieces: a placeholder may be
split at any point between deltas (`<EMA` + `IL_1>`), so text from the last `<` that could
still begin a placeholder is held back until it is complete or can no longer be one. At
most `MAX_PLACEHOLDER` characters are ever held.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from sluice.guardrails.checks import is_plain_text, request_texts
from sluice.guardrails.pii import Entity, find
from sluice.types import (
    ChatRequest,
    DocumentPart,
    Part,
    ResultContent,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)

PLACEHOLDER = re.compile(r"<(EMAIL|PHONE|CARD|IBAN|SSN|IP|SECRET)_([0-9]{1,7})>")
# `<SECRET_9999999>`: the longest placeholder, in characters.
MAX_PLACEHOLDER = len("<SECRET_9999999>")
_PREFIXES = frozenset(
    f"<{e}_"[:n]
    for e in ("EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "SECRET")
    for n in range(1, len(e) + 3)
)


class Masker:
    """One call's placeholders: `mask` text on the way up, `restore` it on the way back."""

    __slots__ = ("_by_value", "_counts", "_entities", "_original", "_taken")

    def __init__(self, entities: Iterable[str] | None = None) -> None:
        self._entities = frozenset(entities) if entities is not None else None
        self._by_value: dict[tuple[str, str], str] = {}
        self._original: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._taken: set[str] = set()  # placeholder-shaped text the caller wrote itself

    def __len__(self) -> int:
        return len(self._original)

    @property
    def entities_found(self) -> list[str]:
        """The kinds masked so far, sorted (for the verdict's rule)."""
        return sorted({p[1 : p.rindex("_")] for p in self._original})

    def reserve(self, text: str) -> None:
        """Note placeholder-shaped strings the caller wrote, so none is handed out again."""
        if "<" in text:
            self._taken.update(m.group(0) for m in PLACEHOLDER.finditer(text))

    def mask(self, text: str) -> str:
        """`text` with each entity replaced by its placeholder."""
        spans = find(text, self._entities)
        if not spans:
            return text
        out: list[str] = []
        pos = 0
        for span in spans:
            out.append(text[pos : span.start])
            out.append(self._placeholder(span.entity, text[span.start : span.end]))
            pos = span.end
        out.append(text[pos:])
        return "".join(out)

    def _placeholder(self, entity: Entity, value: str) -> str:
        key = (entity, value)
        found = self._by_value.get(key)
        if found is not None:
            return found
        n = self._counts.get(entity, 0)
        while True:
            n += 1
            placeholder = f"<{entity}_{n}>"
            if placeholder not in self._taken:
                break
        self._counts[entity] = n
        self._by_value[key] = placeholder
        self._original[placeholder] = value
        return placeholder

    def restore(self, text: str, *, json_string: bool = False) -> str:
        """Put the originals back. `json_string`: the text is the inside of JSON (tool-call
        arguments), so an original is escaped as a JSON string's content."""
        if not self._original or "<" not in text:
            return text

        def sub(match: re.Match[str]) -> str:
            original = self._original.get(match.group(0))
            if original is None:
                return match.group(0)
            return json.dumps(original)[1:-1] if json_string else original

        return PLACEHOLDER.sub(sub, text)


def _held_from(text: str) -> int:
    """Where the tail that could still begin a placeholder starts (len(text): none)."""
    at = text.rfind("<", max(0, len(text) - MAX_PLACEHOLDER))
    if at == -1:
        return len(text)
    tail = text[at:]
    if ">" in tail:
        return len(text)
    if tail in _PREFIXES:
        return at
    # `<EMAIL_12` — a prefix then digits, still open
    m = re.fullmatch(r"<(EMAIL|PHONE|CARD|IBAN|SSN|IP|SECRET)_[0-9]{1,7}", tail)
    return at if m else len(text)


class StreamRestorer:
    """Restores placeholders in one stream of text deltas (answer text, or one tool call's
    argument fragments), holding back only what could be the start of a placeholder."""

    __slots__ = ("_json", "_masker", "_pending")

    def __init__(self, masker: Masker, *, json_string: bool = False) -> None:
        self._masker = masker
        self._json = json_string
        self._pending = ""

    def feed(self, text: str) -> str:
        """The text that can be sent now, restored."""
        text = self._pending + text
        cut = _held_from(text)
        self._pending = text[cut:]
        return self._masker.restore(text[:cut], json_string=self._json)

    def flush(self) -> str:
        """What is held at the end of the stream (an unfinished `<EMA` stays as it is)."""
        text, self._pending = self._pending, ""
        return self._masker.restore(text, json_string=self._json)


def json_answer(req: ChatRequest) -> bool:
    """Whether the answer text is JSON (`json_object` / `json_schema`): a placeholder can
    only stand inside a JSON string there, so its value goes back escaped — a key's
    newlines or a password's backslash restored raw would break the JSON."""
    fmt = req.response_format
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def mask_request(req: ChatRequest, masker: Masker) -> ChatRequest:
    """A copy of `req` with every text (system, turns, tool results, earlier tool-call
    arguments) masked; the caller's request object is left as it was."""
    for text, _ in request_texts(req, include_system=True):
        masker.reserve(text)
    # The caller's own text in places `request_texts` leaves out (earlier tool calls, tool
    # definitions, the response schema): the model can echo those too, and a `<EMAIL_1>`
    # written there must never be handed out for another value.
    for msg in req.messages:
        for item in msg.parts:
            if isinstance(item, ToolCallPart):
                masker.reserve(item.arguments)
    for tool in req.tools or ():
        masker.reserve(
            f"{tool.name} {tool.description or ''} {json.dumps(tool.parameters, default=str)}"
        )
    for extra in (req.response_format, req.native_tools):
        if extra:
            masker.reserve(json.dumps(extra, default=str))

    messages = [
        dataclasses.replace(msg, parts=[_masked(p, masker) for p in msg.parts])
        for msg in req.messages
    ]
    system = [_masked_text(p, masker) for p in req.system]
    return dataclasses.replace(req, messages=messages, system=system)


def _masked_text(part: TextPart, masker: Masker) -> TextPart:
    masked = masker.mask(part.text)
    return part if masked == part.text else dataclasses.replace(part, text=masked)


def _masked(part: Part, masker: Masker) -> Part:
    """A part of a message with its text masked (a tool result's parts too)."""
    if isinstance(part, TextPart):
        return _masked_text(part, masker)
    if isinstance(part, DocumentPart):
        return mask_document(part, masker.mask)
    if isinstance(part, ToolResultPart):
        content: list[ResultContent] = [
            _masked_text(p, masker)
            if isinstance(p, TextPart)
            else mask_document(p, masker.mask)
            if isinstance(p, DocumentPart)
            else p
            for p in part.content
        ]
        return dataclasses.replace(part, content=content)
    if isinstance(part, ToolCallPart):
        masked = masker.mask(part.arguments)
        return part if masked == part.arguments else dataclasses.replace(part, arguments=masked)
    return part


def mask_document(part: DocumentPart, mask: Callable[[str], str]) -> DocumentPart:
    """A text document or search result with its text masked: in the neutral part and in
    the caller's own block (`raw`, which an upstream of the caller's API gets as it is).
    Base64 text stays base64; PDFs, URLs and file ids are not read (nor masked)."""
    changed = False

    def m(text: str) -> str:
        nonlocal changed
        out = mask(text)
        changed = changed or out != text
        return out

    title = m(part.title) if part.title else part.title
    data = part.data
    if data is not None and (part.kind == "search_result" or is_plain_text(part.media_type)):
        data = _mask_data(data, m, plain=part.media_type is not None)
    raw = _mask_block(part.raw, m) if part.raw is not None else None
    if not changed:
        return part
    return dataclasses.replace(part, title=title, data=data, raw=raw)


def _mask_data(data: str, m: Callable[[str], str], *, plain: bool = True) -> str:
    """Base64 text masked and encoded again, or (`plain`) the text itself masked; binary
    data is left as it is."""
    try:
        text = base64.b64decode(data, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return m(data) if plain else data
    masked = m(text)
    return data if masked == text else base64.b64encode(masked.encode()).decode()


def _mask_texts(value: Any, m: Callable[[str], str]) -> Any:
    """A string, or a list of text blocks, masked."""
    if isinstance(value, str):
        return m(value)
    if isinstance(value, list):
        return [
            {**b, "text": m(b["text"])}
            if isinstance(b, dict) and isinstance(b.get("text"), str)
            else b
            for b in value
        ]
    return value


def _mask_block(raw: dict[str, Any], m: Callable[[str], str]) -> dict[str, Any]:
    """The caller's block with its text masked: Anthropic `document` (text, base64 text
    and content sources; title and context) and `search_result`, OpenAI `file` with text
    `file_data`."""
    out = dict(raw)
    for key in ("title", "context"):
        if isinstance(out.get(key), str):
            out[key] = m(out[key])
    if out.get("type") == "search_result":
        out["content"] = _mask_texts(out.get("content"), m)
    source = out.get("source")
    if isinstance(source, dict):
        source = dict(source)
        kind, media = source.get("type"), source.get("media_type")
        if kind == "text" and isinstance(source.get("data"), str):
            source["data"] = m(source["data"])
        elif (
            kind == "base64"
            and isinstance(media, str)
            and is_plain_text(media)
            and isinstance(source.get("data"), str)
        ):
            source["data"] = _mask_data(source["data"], m)
        elif kind == "content":
            source["content"] = _mask_texts(source.get("content"), m)
        out["source"] = source
    spec = out.get("file")
    if out.get("type") == "file" and isinstance(spec, dict):
        spec = dict(spec)
        value = spec.get("file_data")
        head, b64, data = value.partition(";base64,") if isinstance(value, str) else ("", "", "")
        if b64 and head.startswith("data:") and is_plain_text(head[5:]):
            spec["file_data"] = head + b64 + _mask_data(data, m)
        elif isinstance(value, str) and not value.startswith("data:"):
            spec["file_data"] = _mask_data(value, m, plain=False)
        out["file"] = spec
    return out
