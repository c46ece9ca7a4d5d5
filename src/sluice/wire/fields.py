"""Small typed readers for decoding untrusted JSON, raising 400s that name the field.

Hand-written rather than pydantic models: decoding goes straight into the neutral types
(one pass, no intermediate objects) and every error carries the exact JSON path.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sluice.errors import InvalidRequestError

T = TypeVar("T")

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
}


def invalid(path: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(f"{path}: {message}", param=path)


def _is(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def req(obj: dict[str, Any], key: str, kind: type[T], path: str) -> T:
    """A required field of the given JSON type."""
    where = f"{path}.{key}" if path else key
    if key not in obj or obj[key] is None:
        raise invalid(where, "is required")
    value = obj[key]
    if not _is(value, kind):
        raise invalid(where, f"must be {_TYPE_NAMES.get(kind, kind.__name__)}")
    return value  # type: ignore[no-any-return]


def opt(obj: dict[str, Any], key: str, kind: type[T], path: str) -> T | None:
    """An optional field; JSON null counts as absent."""
    value = obj.get(key)
    if value is None:
        return None
    if not _is(value, kind):
        where = f"{path}.{key}" if path else key
        raise invalid(where, f"must be {_TYPE_NAMES.get(kind, kind.__name__)}")
    if kind is float:
        return float(value)  # type: ignore[return-value]
    return value  # type: ignore[no-any-return]


def opt_number(obj: dict[str, Any], key: str, path: str, lo: float, hi: float) -> float | None:
    value = opt(obj, key, float, path)
    if value is not None and not lo <= value <= hi:
        where = f"{path}.{key}" if path else key
        raise invalid(where, f"must be between {lo:g} and {hi:g}")
    return value


# Counts (max_tokens, n, top_k, ...): a 20-digit max_tokens once reached the budget
# arithmetic and Redis as a number past 64 bits (a 500).
MAX_COUNT = 2**31 - 1


def opt_positive_int(obj: dict[str, Any], key: str, path: str) -> int | None:
    value = opt(obj, key, int, path)
    if value is not None and not 1 <= value <= MAX_COUNT:
        where = f"{path}.{key}" if path else key
        raise invalid(where, f"must be between 1 and {MAX_COUNT}")
    return value


def as_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(path, "must be an object")
    return value


def string_list(value: Any, path: str, max_items: int | None = None) -> list[str]:
    """A string or an array of strings (as OpenAI `stop` accepts)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(path, "must be a string or an array of strings")
    if max_items is not None and len(value) > max_items:
        raise invalid(path, f"must have at most {max_items} items")
    return list(value)
