"""Cheap signals for the learned router: what a prompt looks like, beyond its meaning.

The learned router reads the MiniLM embedding of the last user turn (plus a little of the
turn before) and these hand-made signals: length, code, error text, maths symbols, questions,
JSON/tool requests, conversation depth. All are pure functions of the conversation, cost
~20 µs, and deliberately ignore the system prompt: a long policy prompt says nothing about
how hard this particular question is (and would shift every length signal at once).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Names in the order of `signal_vector`; stored with the weights so a mismatch is caught.
SIGNAL_NAMES = (
    "chars",
    "words",
    "lines",
    "code_block",
    "code_chars",
    "error_text",
    "maths_symbols",
    "digits",
    "questions",
    "json_request",
    "tools",
    "depth",
    "previous_chars",
    "non_ascii",
)

_CODE_CHARS = frozenset("{}();=<>[]_$#|\\&*")
_MATHS = re.compile(
    r"[=^√∑∫≤≥±\u00d7÷π∞∂≠≈]|\d\s*[-+*/]\s*\d|\b[a-z]\s*\^\s*\d|\b(?:sin|cos|log|ln)\("
)
_ERROR = re.compile(
    r"(?:\w+(?:Error|Exception)\b|Traceback|panic:|fatal error|exit code \d|errno|"
    r"stack trace|segmentation fault|error\[E\d+\])",
    re.IGNORECASE,
)
_JSON = re.compile(r"\b(?:json|schema|yaml|xml|function call|tool call)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Turns:
    """The part of a conversation the learned router reads."""

    last: str  # the last user turn's text
    previous: str = ""  # the user turn before it, if any
    depth: int = 0  # earlier user turns
    tools: bool = False  # the request defines tools


def signal_vector(turns: Turns) -> list[float]:
    """One float per name in SIGNAL_NAMES (unscaled; the model stores mean and spread)."""
    text = turns.last
    n = max(len(text), 1)
    return [
        math.log1p(len(text)),
        math.log1p(len(text.split())),
        math.log1p(text.count("\n")),
        1.0 if "```" in text or "\n    " in text else 0.0,
        10.0 * sum(c in _CODE_CHARS for c in text) / n,
        1.0 if _ERROR.search(text) else 0.0,
        math.log1p(len(_MATHS.findall(text))),
        10.0 * sum(c.isdigit() for c in text) / n,
        float(min(text.count("?"), 5)),
        1.0 if _JSON.search(text) else 0.0,
        1.0 if turns.tools else 0.0,
        math.log1p(turns.depth),
        math.log1p(len(turns.previous)),
        10.0 * sum(ord(c) > 127 for c in text) / n,
    ]
