"""Offline token estimates shared by the gateway and the simulator.

The simulator reports usage with the same function the gateway uses to estimate it, so
tests can assert exact counts. It is an approximation of BPE tokenizers (words split in
4-character pieces, punctuation one token each): within ~15% of cl100k on English prose.
Billing always uses the usage the provider returns; this is only for estimates.
"""

from __future__ import annotations

import re

import orjson

from sluice.types import ChatRequest, TextPart, ToolCallPart, ToolResultPart

_PIECE = re.compile(r"\w+|[^\w\s]")


def count_text(text: str) -> int:
    """Estimated token count of a plain string."""
    total = 0
    for piece in _PIECE.findall(text):
        total += (len(piece) + 3) // 4
    return total


def split_tokens(text: str) -> list[str]:
    """Split text into pieces whose count equals `count_text(text)`, keeping spacing.

    Used by the simulator to stream an answer token by token.
    """
    pieces: list[str] = []
    for match in re.finditer(r"\s*(\w+|[^\w\s])", text):
        chunk = match.group(0)
        lead = len(chunk) - len(match.group(1))
        word = match.group(1)
        first = True
        for start in range(0, len(word), 4):
            piece = word[start : start + 4]
            pieces.append((chunk[:lead] if first else "") + piece)
            first = False
    return pieces


# Per-message framing cost (role markers) used by both sides' prompt counts.
MESSAGE_OVERHEAD = 3
REQUEST_OVERHEAD = 3


def count_prompt(texts: list[str], messages: int) -> int:
    """Estimated prompt tokens: framing per message plus the text of every part.

    `texts` are all the text-bearing pieces of the prompt (system, message text, tool
    call arguments, tool results, tool definitions as compact JSON). The simulator and
    the gateway both call this, so estimates and simulated usage agree exactly.
    """
    return REQUEST_OVERHEAD + messages * MESSAGE_OVERHEAD + sum(count_text(t) for t in texts)


def _message_texts(req: ChatRequest) -> list[str]:
    """The text-bearing pieces of the system prompt and the messages (not the tools)."""
    texts: list[str] = [p.text for p in req.system]
    for msg in req.messages:
        for part in msg.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            elif isinstance(part, ToolCallPart):
                texts.append(part.arguments)
            elif isinstance(part, ToolResultPart):
                texts.extend(p.text for p in part.content if isinstance(p, TextPart))
    return texts


def estimate_request_tokens(req: ChatRequest) -> int:
    """Estimated prompt tokens of a neutral request, counted the way the simulator counts
    usage (tools as compact sorted JSON of name, parameters and description)."""
    texts = _message_texts(req)
    for tool in req.tools:
        spec: dict[str, object] = {"name": tool.name, "parameters": tool.parameters}
        if tool.description is not None:
            spec["description"] = tool.description
        texts.append(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS).decode())
    return count_prompt(texts, len(req.messages) + (1 if req.system else 0))


def request_tokens_at_most(req: ChatRequest) -> int:
    """An upper bound of `estimate_request_tokens(req)` that costs no counting: every piece
    the estimate counts is at least one character long. (With tools, the estimate itself:
    their JSON is what gets counted.)"""
    if req.tools:
        return estimate_request_tokens(req)
    framing = (len(req.messages) + (1 if req.system else 0)) * MESSAGE_OVERHEAD
    return REQUEST_OVERHEAD + framing + sum(map(len, _message_texts(req)))
