"""OpenAI's attribute filters (comparison and compound), validated once, applied before scoring.

    {"type": "eq", "key": "lang", "value": "en"}
    {"type": "and", "filters": [{...}, {"type": "or", "filters": [...]}]}

Comparison types: eq, ne, gt, gte, lt, lte, in, nin. Values are strings, numbers or booleans
(`in`/`nin`: a list of them). A missing attribute never matches (except `ne`/`nin`, true).
Filters run on each chunk's file attributes *before* BM25 and dense scoring, so a filtered
search ranks only what it may return (no post-filter starving the top-k).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Attributes = Mapping[str, Any]
Predicate = Callable[[Attributes], bool]

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
MAX_DEPTH = 8
MAX_NODES = 256
MAX_ATTRIBUTES = 16
# `in`/`nin` values: membership runs for every chunk of the store, so an unbounded list (a
# 10 MB body holds ~700k values) cost ~20 s of CPU per 1000 chunks and a second compiling
# on the event loop. A bounded list, kept as a set.
MAX_LIST_VALUES = 1000


class FilterError(ValueError):
    """The filter is not in OpenAI's shape; the message names the problem."""


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and not (
        isinstance(value, float) and value != value
    )


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "eq":
        return bool(have == want)
    if op == "ne":
        return bool(have != want)
    if op == "in":
        return have in want
    if op == "nin":
        return have not in want
    if isinstance(have, bool) or isinstance(want, bool):
        return False
    numbers = isinstance(have, int | float) and isinstance(want, int | float)
    strings = isinstance(have, str) and isinstance(want, str)
    if not (numbers or strings):
        return False
    if op == "gt":
        return bool(have > want)
    if op == "gte":
        return bool(have >= want)
    if op == "lt":
        return bool(have < want)
    return bool(have <= want)


def compile_filter(spec: Any) -> Predicate | None:
    """A predicate over attributes, or None for no filter; `FilterError` on a bad shape."""
    if spec is None:
        return None
    count = [0]
    return _compile(spec, 0, count)


def _compile(spec: Any, depth: int, count: list[int]) -> Predicate:
    count[0] += 1
    if depth > MAX_DEPTH or count[0] > MAX_NODES:
        raise FilterError("filter is nested too deeply or too large")
    if not isinstance(spec, Mapping):
        raise FilterError("a filter must be an object")
    kind = spec.get("type")
    if kind in ("and", "or"):
        parts = spec.get("filters")
        if not isinstance(parts, list) or not parts:
            raise FilterError(f"'{kind}' filter needs a non-empty 'filters' list")
        subs = [_compile(p, depth + 1, count) for p in parts]
        if kind == "and":
            return lambda attrs: all(s(attrs) for s in subs)
        return lambda attrs: any(s(attrs) for s in subs)
    if kind not in COMPARISONS:
        raise FilterError(f"unknown filter type {str(kind)[:32]!r}")
    key = spec.get("key")
    if not isinstance(key, str) or not key:
        raise FilterError("comparison filter needs a string 'key'")
    value = spec.get("value")
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not all(_scalar(v) for v in value):
            raise FilterError(f"'{kind}' filter needs a list of strings, numbers or booleans")
        if len(value) > MAX_LIST_VALUES:
            raise FilterError(f"'{kind}' filter takes at most {MAX_LIST_VALUES} values")
        want: Any = frozenset(value)
    elif not _scalar(value):
        raise FilterError("comparison 'value' must be a string, number or boolean")
    else:
        want = value
    op = str(kind)

    def match(attrs: Attributes) -> bool:
        if key not in attrs:
            return op in ("ne", "nin")
        return _compare(op, attrs[key], want)

    return match


def validate_attributes(attrs: Any) -> dict[str, str | int | float | bool]:
    """OpenAI's limits: ≤16 keys (≤64 chars), values string (≤512 chars), number or bool."""
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise FilterError("attributes must be an object")
    if len(attrs) > MAX_ATTRIBUTES:
        raise FilterError(f"at most {MAX_ATTRIBUTES} attributes")
    out: dict[str, str | int | float | bool] = {}
    for key, value in attrs.items():
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise FilterError("attribute keys must be strings of 1-64 characters")
        if isinstance(value, str):
            if len(value) > 512:
                raise FilterError("attribute string values are at most 512 characters")
        elif not _scalar(value):
            raise FilterError("attribute values must be strings, numbers or booleans")
        out[key] = value
    return out
