"""The simulator as a deterministic LLM judge, so every judge path runs offline.

A judge call asks for a JSON verdict: `{"score": 1-5, "reason": ...}` (Sluice's 1-5 judge:
offline eval runs, online sampling) or `{"winner": "A" | "B" | "tie", "reason": ...}`
(pairwise, shadow reports). The simulator already answers any JSON schema with a valid
instance seeded by the prompt; for these two shapes the verdict follows fixed rules instead:

- score: the `x-sim-judge-score: N` header (1-5); else the last `sim-judge-score=N` written
  anywhere in the prompt (a test puts it in the judged question or answer); else the seeded
  instance (stable for a given prompt and simulator seed).
- winner: the `x-sim-judge-winner: A|B|tie` header; else the answer that contains
  `sim-better` (alone); else the longer answer, `tie` when equally long. These rules do not
  depend on the answers' positions, so a position-swapped judge agrees with itself.

These verdicts say nothing about quality: real quality numbers need a real judge model.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import orjson

from sluice.sim.text import Answer, Prompt
from sluice.tokens import split_tokens

SCORE_HEADER = "x-sim-judge-score"
WINNER_HEADER = "x-sim-judge-winner"
SCORE_MARK = re.compile(r"sim-judge-score=([1-5])")
BETTER_MARK = "sim-better"
_A, _B = "ANSWER A:\n", "\n\nANSWER B:\n"


def judged(answer: Answer, prompt: Prompt, headers: Mapping[str, str]) -> Answer:
    """`answer`, its verdict set by the rules above when it is a judge's verdict."""
    if prompt.json_schema is None or answer.tool_calls or not answer.text.startswith("{"):
        return answer
    try:
        doc: Any = orjson.loads(answer.text)
    except orjson.JSONDecodeError:
        return answer
    if not isinstance(doc, dict) or set(doc) not in ({"score", "reason"}, {"winner", "reason"}):
        return answer
    text = "\n".join(prompt.texts)
    if "score" in doc:
        doc = {"score": _score(headers, text, doc["score"]), "reason": "simulated verdict"}
    else:
        doc = {"winner": _winner(headers, text), "reason": "simulated verdict"}
    out = orjson.dumps(doc).decode()
    pieces = split_tokens(out)
    return dataclasses.replace(answer, text=out, pieces=pieces, output_tokens=len(pieces))


def _score(headers: Mapping[str, str], text: str, seeded: Any) -> int:
    given = headers.get(SCORE_HEADER, "").strip()
    if given in ("1", "2", "3", "4", "5"):
        return int(given)
    marks = SCORE_MARK.findall(text)
    if marks:
        return int(marks[-1])
    return seeded if isinstance(seeded, int) and 1 <= seeded <= 5 else 3


def _winner(headers: Mapping[str, str], text: str) -> str:
    given = headers.get(WINNER_HEADER, "").strip()
    if given in ("A", "B", "tie"):
        return given
    start, middle = text.find(_A), text.find(_B)
    if start < 0 or middle < start:
        return "tie"
    a, b = text[start + len(_A) : middle], text[middle + len(_B) :]
    if (BETTER_MARK in a) != (BETTER_MARK in b):
        return "A" if BETTER_MARK in a else "B"
    if len(a) == len(b):
        return "tie"
    return "A" if len(a) > len(b) else "B"
