"""Deterministic scorers: pure functions of (answer text, expected, spec) -> score in [0, 1].

| type          | passes when                                                      |
|---------------|------------------------------------------------------------------|
| `exact`       | the answer equals `expected` (or `value`) exactly                |
| `normalized`  | equal after case-folding, trimming, collapsing whitespace and    |
|               | dropping trailing punctuation (the default with `expected`)      |
| `contains`    | `value` (or `expected`) occurs in the answer (`ignore_case`)     |
| `regex`       | `pattern` matches anywhere in the answer (Python `re.search`)    |
| `json_valid`  | the answer (``` fences stripped) parses as JSON                  |
| `json_schema` | it parses and validates against `schema` (Draft 2020-12)         |
| `numeric`     | the first number in the answer is within `tolerance` (absolute)  |
|               | or `relative` of `expected`                                      |

Each is all-or-nothing (1.0 or 0.0); an item's score is the mean of its scorers', and it
passes when every scorer does.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

import orjson
from jsonschema import Draft202012Validator, SchemaError
from pydantic import Field, model_validator

from sluice.config_base import Frozen

ScorerType = Literal[
    "exact", "normalized", "contains", "regex", "json_valid", "json_schema", "numeric"
]
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class ScorerSpec(Frozen):
    type: ScorerType
    value: str | None = None  # exact / contains: compare with this instead of `expected`
    pattern: str | None = Field(default=None, max_length=2000)
    ignore_case: bool = False
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    tolerance: float = Field(default=0.0, ge=0)
    relative: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> ScorerSpec:
        if self.type == "regex":
            if self.pattern is None:
                raise ValueError("a regex scorer needs 'pattern'")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"bad regex pattern: {exc}") from None
        if self.type == "json_schema":
            if self.schema_ is None:
                raise ValueError("a json_schema scorer needs 'schema'")
            try:
                Draft202012Validator.check_schema(self.schema_)
            except SchemaError as exc:
                raise ValueError(f"bad JSON Schema: {exc.message}") from None
        return self


DEFAULT = ScorerSpec(type="normalized")


def normalize(text: str) -> str:
    """Case-folded, trimmed, whitespace collapsed, trailing . ! ? dropped."""
    return _SPACE.sub(" ", text.casefold()).strip().rstrip(".!?").strip()


def _json(answer: str) -> tuple[bool, Any]:
    text = answer.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced[1]
    try:
        return True, orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None


def _first_number(text: str) -> float | None:
    match = _NUMBER.search(text)
    if match is None:
        return None
    try:
        return float(match[0].replace(",", ""))
    except ValueError:
        return None


def score(answer: str, expected: str | None, spec: ScorerSpec) -> float:
    """1.0 when `answer` passes `spec`, else 0.0; a scorer that needs `expected` and has
    none scores 0.0."""
    return 1.0 if _passes(answer, expected, spec) else 0.0


def _passes(answer: str, expected: str | None, spec: ScorerSpec) -> bool:
    target = spec.value if spec.value is not None else expected
    kind = spec.type
    if kind == "json_valid":
        return _json(answer)[0]
    if kind == "json_schema":
        ok, doc = _json(answer)
        return ok and Draft202012Validator(spec.schema_ or {}).is_valid(doc)
    if kind == "regex":
        flags = re.IGNORECASE if spec.ignore_case else 0
        return re.search(spec.pattern or "", answer, flags) is not None
    if target is None:
        return False
    if kind == "exact":
        return answer == target
    if kind == "normalized":
        return normalize(answer) == normalize(target)
    if kind == "contains":
        if spec.ignore_case:
            return target.casefold() in answer.casefold()
        return target in answer
    got, want = _first_number(answer), _first_number(target)
    if got is None or want is None:
        return False
    allowed = max(spec.tolerance, spec.relative * abs(want))
    return math.isclose(got, want, rel_tol=0.0, abs_tol=allowed) or got == want


def score_item(
    answer: str, expected: str | None, specs: tuple[ScorerSpec, ...]
) -> dict[str, float]:
    """Each scorer's score by type (a repeated type gets `#2`, `#3`...)."""
    out: dict[str, float] = {}
    for spec in specs or (DEFAULT,):
        name: str = spec.type
        n = 2
        while name in out:
            name = f"{spec.type}#{n}"
            n += 1
        out[name] = score(answer, expected, spec)
    return out
