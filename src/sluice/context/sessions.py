"""Server-side conversations: what a session holds and where it is kept.

A session is a running summary of its older turns plus the latest messages verbatim. It is
stored per tenant under a hashed key (the session id never appears in a key or a log) in a
`CacheBackend`: the gateway's Redis when `cache.backend` is redis, so every replica sees
the same conversation; a per-process memory backend otherwise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from sluice.cache.backends import CacheBackend, part_from_json, part_to_json
from sluice.errors import InvalidRequestError
from sluice.types import ChatRequest, Message

SESSION_HEADER = "x-sluice-session"
MAX_SESSION_ID = 256
_VERSION = 1


@dataclass(slots=True)
class Session:
    summary: str | None = None  # the running summary of turns no longer kept verbatim
    messages: list[Message] = field(default_factory=list)
    summarized_turns: int = 0  # how many turns the summary covers


def session_id(req: ChatRequest) -> str | None:
    """The caller's session: CallMeta.session, the header, or metadata.session_id."""
    meta = req.meta
    found = meta.session or meta.headers.get(SESSION_HEADER) or meta.metadata.get("session_id")
    if found is None or found == "":
        return None
    if not isinstance(found, str) or len(found) > MAX_SESSION_ID:
        raise InvalidRequestError(
            f"a session id must be a string of at most {MAX_SESSION_ID} characters",
            param="session_id",
        )
    return found


def session_key(tenant: str, sid: str) -> str:
    digest = hashlib.sha256(f"{tenant}\x00{sid}".encode()).hexdigest()
    return f"session:{digest}"


class SessionStore:
    def __init__(self, backend: CacheBackend) -> None:
        self.backend = backend

    async def load(self, tenant: str, sid: str) -> Session:
        blob = await self.backend.get(session_key(tenant, sid))
        return decode_session(blob) if blob is not None else Session()

    async def save(self, tenant: str, sid: str, session: Session, ttl_s: float) -> None:
        await self.backend.set(session_key(tenant, sid), encode_session(session), ttl_s)


def encode_session(session: Session) -> bytes:
    return orjson.dumps(
        {
            "v": _VERSION,
            "summary": session.summary,
            "turns": session.summarized_turns,
            "messages": [_message_to_json(m) for m in session.messages],
        }
    )


def decode_session(blob: bytes) -> Session:
    doc = orjson.loads(blob)
    if doc.get("v") != _VERSION:
        return Session()  # written by another version: start afresh rather than misread
    return Session(
        summary=doc["summary"],
        messages=[_message_from_json(m) for m in doc["messages"]],
        summarized_turns=int(doc["turns"]),
    )


def _message_to_json(msg: Message) -> dict[str, Any]:
    return {"role": msg.role, "name": msg.name, "parts": [part_to_json(p) for p in msg.parts]}


def _message_from_json(doc: dict[str, Any]) -> Message:
    return Message(doc["role"], [part_from_json(p) for p in doc["parts"]], doc["name"])
