"""Recognise what an upstream error means, whichever server said it.

Hosted APIs and self-hosted servers say "the prompt is too long" in different words; a caller
should see one code for it (`context_length_exceeded`, OpenAI's), so clients and the fallback
logic can act on it. Table-tested in tests/unit/test_upstream_codes.py with the bodies each server
really sends (llama.cpp's captured from `sluice local-model`).
"""

from __future__ import annotations

from typing import Any

import orjson

CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"

# Lower-cased fragments of the error type, code or message of each server. One list for
# the code a caller sees and for the executor's "try a bigger window" decision
# (`sluice.reliability.outcomes.is_context_overflow`).
_CONTEXT_SIGNS = (
    "context_length_exceeded",  # OpenAI code
    "exceed_context_size_error",  # llama.cpp server type
    "exceeds the available context size",  # llama.cpp server message
    "context length",  # OpenAI / vLLM: "maximum context length"
    "context_length",
    "context window",
    "maximum context",
    "prompt is too long",  # Anthropic message
    "too many tokens",
    "input length exceeds",  # TGI-style
)


def says_context_exceeded(text: str) -> bool:
    """Whether an upstream's error text says the prompt did not fit the context window."""
    lowered = text.lower()
    return any(sign in lowered for sign in _CONTEXT_SIGNS)


def _fields(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    err = body.get("error", body)
    if isinstance(err, str):
        return [err]
    if not isinstance(err, dict):
        return []
    return [str(err.get(k, "")) for k in ("type", "code", "message")]


def upstream_code(status: int, raw: bytes) -> str | None:
    """A Sluice error code for an upstream error body, or None for the generic one."""
    if status not in (400, 413, 422):
        return None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        texts = [raw[:500].decode("utf-8", "replace")]
    else:
        texts = _fields(body)
    if says_context_exceeded(" ".join(texts)):
        return CONTEXT_LENGTH_EXCEEDED
    return None
