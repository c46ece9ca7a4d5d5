"""Anthropic `document` and `search_result` blocks ⇄ neutral `DocumentPart`.

Decoding keeps the caller's block (`raw`) so an Anthropic upstream gets it back unchanged;
encoding builds a block only for documents that came from the other API (OpenAI `file`
parts): base64 PDFs and text files map, file ids and other types are refused
(`wire/mapping.py`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from sluice.types import CacheControl, DocumentPart
from sluice.wire import mapping
from sluice.wire.fields import as_object, invalid, opt, req


def _cache(block: dict[str, Any], path: str) -> CacheControl | None:
    return opt(block, "cache_control", dict, path)


def content_text(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise invalid(path, "must be a string or an array of text blocks")
    texts = [as_object(b, f"{path}[{i}]").get("text") for i, b in enumerate(value)]
    return "\n".join(t for t in texts if isinstance(t, str))


def decode_document(block: dict[str, Any], where: str) -> DocumentPart:
    """`document` (PDF/text/URL/content/file sources) or `search_result`."""
    if block.get("type") == "search_result":
        return DocumentPart(
            "search_result",
            media_type="text/plain",
            data=content_text(block.get("content"), f"{where}.content"),
            url=req(block, "source", str, where),
            title=opt(block, "title", str, where),
            raw=block,
            wire="anthropic",
            cache_control=_cache(block, where),
        )
    source = as_object(block.get("source"), f"{where}.source")
    kind = source.get("type")
    part = DocumentPart(
        "document",
        title=opt(block, "title", str, where),
        raw=block,
        wire="anthropic",
        cache_control=_cache(block, where),
    )
    if kind in ("base64", "text"):
        part.media_type = req(source, "media_type", str, f"{where}.source")
        part.data = req(source, "data", str, f"{where}.source")
    elif kind == "url":
        part.url = req(source, "url", str, f"{where}.source")
        part.media_type = "application/pdf"
    elif kind == "content":
        part.media_type = "text/plain"
        part.data = content_text(source.get("content"), f"{where}.source.content")
    elif kind == "file":
        part.file_id = req(source, "file_id", str, f"{where}.source")
    else:
        raise invalid(
            f"{where}.source.type", "must be 'base64', 'text', 'url', 'content' or 'file'"
        )
    return part


def encode_document(part: DocumentPart, refuse: Callable[[str], Exception]) -> dict[str, Any]:
    if part.wire == "anthropic" and part.raw is not None:
        return part.raw
    source: dict[str, Any] | None = None
    if part.data is not None and part.media_type == "application/pdf":
        source = {"type": "base64", "media_type": "application/pdf", "data": part.data}
    elif part.data is not None and part.media_type == "text/plain":
        try:
            text = base64.b64decode(part.data, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            text = part.data
        source = {"type": "text", "media_type": "text/plain", "data": text}
    if source is None:
        raise refuse(mapping.describe(part))
    block: dict[str, Any] = {"type": "document", "source": source}
    if part.filename or part.title:
        block["title"] = part.title or part.filename
    if part.cache_control is not None:
        block["cache_control"] = part.cache_control
    return block
