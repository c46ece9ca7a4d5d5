"""Eval datasets: JSONL, one item per line.

Each line is an object::

    {"id": "q1",                                  # optional; default: the line number
     "messages": [{"role": "user", "content": "2+2?"}],   # or "input": "2+2?"
     "system": "Answer with a number.",            # optional
     "response_format": {...}, "tools": [...],      # optional, passed through as given
     "expected": "4",                               # optional
     "tags": ["math"],                              # optional
     "scorers": [{"type": "numeric", "tolerance": 0.01}]}   # optional

Messages are OpenAI chat messages (the wire `sluice eval run` sends through the gateway).
Without `scorers`, an item with `expected` is scored by normalized match; an item with
neither is refused (it could never pass or fail). Errors name the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from pydantic import Field, ValidationError, model_validator

from sluice.config_base import Frozen
from sluice.eval.scorers import ScorerSpec

MAX_ITEMS = 100_000


class DatasetError(Exception):
    """A dataset that cannot be used; the message names the file and line."""


class EvalItem(Frozen):
    # The stored results' key column (255 characters): a longer id, or NUL (PostgreSQL),
    # is refused when the file is read, not when the paid-for run is saved.
    id: str = Field(default="", max_length=255, pattern=r"^[^\x00]*$")
    messages: list[dict[str, Any]] | None = None
    input: str | None = None
    system: str | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    expected: str | float | int | None = None
    tags: tuple[str, ...] = ()
    scorers: tuple[ScorerSpec, ...] = Field(default=())

    @model_validator(mode="after")
    def _complete(self) -> EvalItem:
        if (self.messages is None) == (self.input is None):
            raise ValueError("give exactly one of 'messages' or 'input'")
        if not self.scorers and self.expected is None:
            raise ValueError("give 'expected' or 'scorers' (else nothing can be scored)")
        return self

    def chat_messages(self) -> list[dict[str, Any]]:
        """The OpenAI messages to send, the system prompt first."""
        turns = list(self.messages or [{"role": "user", "content": self.input}])
        if self.system is not None:
            turns.insert(0, {"role": "system", "content": self.system})
        return turns

    def question_text(self) -> str:
        """The last user turn's text (what a judge is shown as the question)."""
        for turn in reversed(self.chat_messages()):
            if turn.get("role") == "user":
                content = turn.get("content")
                return content if isinstance(content, str) else orjson.dumps(content).decode()
        return ""

    def expected_text(self) -> str | None:
        return None if self.expected is None else str(self.expected)


def load_dataset(path: Path, allow_python: bool = False) -> list[EvalItem]:
    """The items of a JSONL file (blank lines skipped); ids default to line numbers and must
    be unique. A `python` scorer imports and calls any function named in the file (say
    `builtins:eval` on the model's answer): refused, before anything is imported, unless
    `allow_python` (`sluice eval run --allow-python-scorers`: the file is trusted)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"cannot read dataset {path}: {exc.strerror or exc}") from None
    items: list[EvalItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
            if not isinstance(data, dict):
                raise DatasetError(f"{path}:{number}: each line must be a JSON object")
            data.setdefault("id", str(number))
            if not allow_python and _python_scorer(data):
                raise DatasetError(
                    f"{path}:{number}: a python scorer runs code named by the dataset; "
                    "pass --allow-python-scorers if you trust this file"
                )
            item = EvalItem.model_validate(data)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: not valid JSON ({exc})") from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "item"
            raise DatasetError(f"{path}:{number}: {where}: {first['msg']}") from None
        if item.id in seen:
            raise DatasetError(f"{path}:{number}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
        if len(items) > MAX_ITEMS:
            raise DatasetError(f"{path}: more than {MAX_ITEMS} items")
    if not items:
        raise DatasetError(f"{path}: no items")
    return items


def _python_scorer(data: dict[str, Any]) -> bool:
    scorers = data.get("scorers")
    return isinstance(scorers, list) and any(
        isinstance(s, dict) and s.get("type") == "python" for s in scorers
    )
