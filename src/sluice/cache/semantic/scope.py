"""Which requests may share a semantic answer, and the text whose meaning is compared.

Only the last user message is compared by meaning. Everything else that shapes the answer
must be identical, so it goes into the scope digest: the tenant, the public model/route,
the system prompt, tools, tool choice, response format, output limits (max_tokens, stop)
and the whole conversation before the last user turn, plus the namespace. Two requests with
different scopes never see each other's entries (the index is searched per scope), so an
answer is never served across tenants or conversations.
"""

from __future__ import annotations

import hashlib

import orjson

from sluice.cache.key import _message, _tool
from sluice.types import ChatRequest, TextPart

SCOPE_VERSION = 1


def tenant_digest(tenant: str) -> str:
    """A short stable prefix for every scope of one tenant."""
    return hashlib.sha256(b"tenant\0" + tenant.encode()).hexdigest()[:16]


def last_user_text(req: ChatRequest) -> str | None:
    """The text of the final message when it is a user turn made only of text; None when the
    request does not end with a plain user question (tool results, images, assistant)."""
    if not req.messages:
        return None
    last = req.messages[-1]
    if last.role != "user" or not last.parts:
        return None
    if not all(isinstance(p, TextPart) for p in last.parts):
        return None
    text = "\n".join(p.text for p in last.parts if isinstance(p, TextPart)).strip()
    return text or None


def scope_of(req: ChatRequest, tenant: str, route: str, namespace: str) -> str:
    """`<tenant digest>:<sha256>`; equal exactly when everything but the last user message
    (and sampling temperature, which cacheability already decides) is equal."""
    choice = req.tool_choice
    doc = {
        "v": SCOPE_VERSION,
        "tenant": tenant,
        "ns": namespace,
        "route": route,
        "system": [p.text for p in req.system],
        "before": [_message(m) for m in req.messages[:-1]],
        "tools": [_tool(t) for t in req.tools],
        "tool_choice": None if choice is None else [choice.mode, choice.name],
        "parallel_tool_calls": req.parallel_tool_calls,
        "response_format": req.response_format,
        "max_tokens": req.max_tokens,
        "stop": req.stop,
        "extras": req.extras,
    }
    digest = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{tenant_digest(tenant)}:{digest}"
