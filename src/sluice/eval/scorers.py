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
| `similarity`  | the cosine similarity of MiniLM embeddings (all-MiniLM-L6-v2,    |
|               | local, `semantic` extra) of answer and expected is at least      |
|               | `threshold` (default 1.0: give one, e.g. 0.8); scores the cosine |
| `python`      | `callable` ("pkg.module:function", called with the answer and    |
|               | the expected text, returning a bool or a number in [0, 1])       |
|               | scores at least `threshold` (1.0 by default)                     |
| `judge`       | an LLM judge's verdict (1-5) on `rubric` is at least `pass_at`;  |
|               | scored (verdict - 1) / 4 (async: `sluice.eval.judge`, run by the |
|               | runner, not here)                                                |

The deterministic ones are all-or-nothing (1.0 or 0.0); an item's score is the mean of its
scorers', and it passes when every scorer does.
"""

from __future__ import annotations

import functools
import importlib
import math
import re
from collections.abc import Callable
from typing import Any, Literal, cast

import orjson
from jsonschema import Draft202012Validator, SchemaError
from pydantic import Field, model_validator

from sluice.config_base import Frozen

ScorerType = Literal[
    "exact",
    "normalized",
    "contains",
    "regex",
    "json_valid",
    "json_schema",
    "numeric",
    "judge",
    "python",
    "similarity",
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
    # judge (sluice.eval.judge): the rubric, the judge model (default: --judge-model), and
    # the lowest verdict (1-5) that passes.
    rubric: str | None = Field(default=None, max_length=8000)
    model: str | None = None
    pass_at: int = Field(default=4, ge=1, le=5)
    # python: a custom scorer by import path, and the score at which it passes.
    callable: str | None = Field(default=None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    threshold: float = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _complete(self) -> ScorerSpec:
        if self.type == "regex":
            if self.pattern is None:
                raise ValueError("a regex scorer needs 'pattern'")
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"bad regex pattern: {exc}") from None
        if self.type == "python":
            if self.callable is None:
                raise ValueError("a python scorer needs 'callable' (module:function)")
            resolve(self.callable)  # fails now, naming the line, not mid-run
        if self.type == "judge" and not self.rubric:
            raise ValueError("a judge scorer needs 'rubric'")
        if self.type == "json_schema":
            if self.schema_ is None:
                raise ValueError("a json_schema scorer needs 'schema'")
            try:
                Draft202012Validator.check_schema(self.schema_)
            except SchemaError as exc:
                raise ValueError(f"bad JSON Schema: {exc.message}") from None
        return self


DEFAULT = ScorerSpec(type="normalized")
CustomScorer = Callable[[str, str | None], Any]


class ScorerError(Exception):
    """A custom scorer raised or returned something that is not a score."""


@functools.lru_cache(maxsize=64)
def resolve(path: str) -> CustomScorer:
    """The function at `module:function` (imported once). Datasets name code to run, like a
    pytest file: run only datasets you trust."""
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ValueError(f"{path!r} is not a callable")
    return cast(CustomScorer, fn)


def _custom(answer: str, expected: str | None, spec: ScorerSpec) -> float:
    fn = resolve(spec.callable or "")
    try:
        value = fn(answer, expected)
    except Exception as exc:
        raise ScorerError(f"scorer {spec.callable}: {type(exc).__name__}: {exc}"[:300]) from None
    if isinstance(value, bool):
        return float(value)
    if not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise ScorerError(f"scorer {spec.callable} returned {value!r}, not a score in [0, 1]")
    return float(value)


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


def _similarity(answer: str, expected: str | None) -> float:
    """Cosine similarity of the two texts' MiniLM embeddings, clipped to [0, 1]. Blocking
    (model inference): the runner calls scorers in a worker thread."""
    if expected is None:
        return 0.0
    from sluice.embed import EmbedderUnavailableError, get_embedder

    try:
        vectors = get_embedder().embed_sync([answer, expected])
    except EmbedderUnavailableError as exc:
        raise ScorerError(f"similarity scorer: {exc}") from None
    return min(1.0, max(0.0, float(vectors[0] @ vectors[1])))


def score(answer: str, expected: str | None, spec: ScorerSpec) -> float:
    """1.0 when `answer` passes `spec`, else 0.0; a scorer that needs `expected` and has
    none scores 0.0. A custom (`python`) scorer returns its own score (or raises
    `ScorerError`)."""
    if spec.type == "python":
        return _custom(answer, expected, spec)
    if spec.type == "similarity":
        return _similarity(answer, spec.value if spec.value is not None else expected)
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
    """Each deterministic scorer's score by name (judges are left to the runner)."""
    return {
        name: score(answer, expected, spec) for name, spec in named(specs) if spec.type != "judge"
    }


def named(specs: tuple[ScorerSpec, ...]) -> list[tuple[str, ScorerSpec]]:
    """Scorers with unique names: their type, and `#2`, `#3`... for repeats (none given:
    normalized match)."""
    out: list[tuple[str, ScorerSpec]] = []
    seen: set[str] = set()
    for spec in specs or (DEFAULT,):
        name: str = spec.type
        n = 2
        while name in seen:
            name = f"{spec.type}#{n}"
            n += 1
        seen.add(name)
        out.append((name, spec))
    return out
