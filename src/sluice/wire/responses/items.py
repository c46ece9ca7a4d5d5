"""`GET /v1/responses/{id}/input_items`: a stored response's input as a page of items.

Input items are stored as the caller sent them (a string `content`, no ids); listed, each
is in the shape the SDK's `ResponseItem` union expects: messages with a content part list,
and an id on every item (the caller's, else one derived from the response id and the
item's position, so it is the same on every listing and usable as a cursor).
"""

from __future__ import annotations

import hashlib
from typing import Any

from sluice.wire.fields import invalid

MAX_LIMIT = 100
_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def _item_id(response_id: str, index: int, kind: str) -> str:
    digest = hashlib.blake2b(f"{response_id}:{index}".encode(), digest_size=16).hexdigest()
    return f"{_PREFIX.get(kind, 'item')}_{digest}"


def _content(content: Any, role: str) -> list[Any]:
    if isinstance(content, list):
        return content
    if role == "assistant":
        return [{"type": "output_text", "text": str(content or ""), "annotations": []}]
    return [{"type": "input_text", "text": str(content or "")}]


def render(item: dict[str, Any], response_id: str, index: int) -> dict[str, Any]:
    kind = str(item.get("type", "message"))
    out = {**item, "type": kind, "id": item.get("id") or _item_id(response_id, index, kind)}
    if kind == "message":
        role = str(item.get("role", "user"))
        out["content"] = _content(item.get("content"), role)
        out.setdefault("status", "completed")
    elif kind in ("function_call", "function_call_output"):
        out.setdefault("status", "completed")
    return out


def page(
    items: list[dict[str, Any]],
    response_id: str,
    *,
    limit: int = 20,
    order: str = "desc",
    after: str | None = None,
) -> dict[str, Any]:
    """One page in OpenAI's list shape; `after` is the id of the last item already seen."""
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid("limit", f"must be between 1 and {MAX_LIMIT}")
    if order not in ("asc", "desc"):
        raise invalid("order", "must be 'asc' or 'desc'")
    rendered = [render(item, response_id, i) for i, item in enumerate(items)]
    if order == "desc":
        rendered.reverse()
    if after is not None:
        ids = [item["id"] for item in rendered]
        if after not in ids:
            raise invalid("after", f"no input item with id {after[:128]!r} in this response")
        rendered = rendered[ids.index(after) + 1 :]
    data = rendered[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(rendered) > limit,
    }
