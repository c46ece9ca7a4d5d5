"""Schema-valid JSON for the simulator's structured answers and tool arguments.

Structured-output rows of the client-library compatibility lane must test the gateway, not
the simulator's limits: an answer to `json_schema` (OpenAI `response_format`, Anthropic
`output_config.format`) is an instance of the schema, generated from it (the keywords
pydantic, zod and hand-written schemas use: `$ref`/`$defs`, `allOf` merged, `anyOf`/`oneOf`,
`enum`/`const`, string `format`/length bounds, number bounds and `multipleOf`, array bounds,
`prefixItems`) and checked with `jsonschema`. A prompt that asks for JSON and carries a
schema in its text (JSON mode with the schema in the system prompt, as instructor and
Sluice's own prompt mode send it) gets an instance of that schema.
"""

from __future__ import annotations

import json
import math
import random
import re
from typing import Any

import jsonschema

WORDS = ("alpha", "bravo", "delta", "echo", "kilo", "lima", "nova", "orbit")
_FORMATS = {
    "date": "2024-01-15",
    "date-time": "2024-01-15T10:00:00Z",
    "time": "10:00:00",
    "email": "alpha@example.com",
    "uri": "https://example.com/alpha",
    "url": "https://example.com/alpha",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "ipv4": "192.0.2.1",
    "hostname": "example.com",
    "duration": "P1D",
}
_MAX_DEPTH = 12


def _resolve(schema: Any, root: Any) -> Any:
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if not (isinstance(ref, str) and ref.startswith("#")):
        return schema
    target: Any = root
    for part in ref[2:].split("/") if len(ref) > 1 else []:
        target = target.get(part) if isinstance(target, dict) else None
    rest = {k: v for k, v in schema.items() if k != "$ref"}
    return {**target, **rest} if isinstance(target, dict) else rest


def _merge_all_of(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema.get("allOf") or ():
        part = _resolve(part, root)
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def fill_schema(schema: Any, rng: random.Random, root: Any = None, depth: int = 0) -> Any:
    """A value valid for `schema` (required object properties only, first enum value)."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return WORDS[rng.getrandbits(3)]
    if "allOf" in schema:
        schema = _merge_all_of(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for combo in ("anyOf", "oneOf"):
        options = schema.get(combo)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return fill_schema((usable or options)[0], rng, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        return _object(schema, rng, root, depth)
    if kind == "array":
        return _array(schema, rng, root, depth)
    return _scalar(kind, schema, rng)


def _object(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> Any:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    required = schema.get("required")
    names = list(required) if isinstance(required, list) and required else list(props)[:1]
    minimum = int(schema.get("minProperties", 0) or 0)
    names += [n for n in props if n not in names][: max(minimum - len(names), 0)]
    return {str(n): fill_schema(props.get(n, {}), rng, root, depth + 1) for n in names}


def _array(schema: dict[str, Any], rng: random.Random, root: Any, depth: int) -> Any:
    prefix = schema.get("prefixItems")
    if isinstance(prefix, list) and prefix:
        return [fill_schema(p, rng, root, depth + 1) for p in prefix]
    low = int(schema.get("minItems", 1) or 0)
    high = schema.get("maxItems")
    count = max(low, 1) if high is None else min(max(low, 1), int(high))
    items = schema.get("items", {})
    values = [fill_schema(items, rng, root, depth + 1) for _ in range(count)]
    if schema.get("uniqueItems") and count > 1 and isinstance(values[0], str):
        values = [f"{v}{i}" if i else v for i, v in enumerate(values)]
    return values


def _number(kind: str, schema: dict[str, Any], rng: random.Random) -> int | float:
    """Inside [minimum, maximum] and strictly inside the exclusive bounds; a multiple of
    `multipleOf` when given."""
    low_x, high_x = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    low_x = None if isinstance(low_x, bool) else low_x
    high_x = None if isinstance(high_x, bool) else high_x
    low = schema.get("minimum", low_x if low_x is not None else 1)
    high = schema.get("maximum", high_x if high_x is not None else max(low, 1) + 99)
    step = schema.get("multipleOf")
    if kind == "integer":
        first = math.floor(low) + 1 if low_x is not None and low == low_x else math.ceil(low)
        last = math.ceil(high) - 1 if high_x is not None and high == high_x else math.floor(high)
        if isinstance(step, int | float) and step > 0:
            return int(step * math.ceil(first / step))
        return rng.randint(first, max(first, last))
    if isinstance(step, int | float) and step > 0:
        return float(step * (math.floor(low / step) + 1))
    return float(low + (high - low) / 2) if high > low else float(low)


def _scalar(kind: Any, schema: dict[str, Any], rng: random.Random) -> Any:
    if kind in ("integer", "number"):
        return _number(kind, schema, rng)
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    text = _FORMATS.get(str(schema.get("format")), WORDS[rng.getrandbits(3)])
    shortest = int(schema.get("minLength", 0) or 0)
    if len(text) < shortest:
        text = (text + "x" * shortest)[:shortest]
    longest = schema.get("maxLength")
    return text[:longest] if isinstance(longest, int) else text


def instance(schema: dict[str, Any], rng: random.Random) -> Any:
    """`fill_schema`, checked: an answer the schema rejects would test the simulator."""
    value = fill_schema(schema, rng)
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError:
        pass  # e.g. a `pattern` the generator cannot meet: answer anyway, as a model would
    except jsonschema.SchemaError:
        pass
    return value


_MENTIONS_JSON = re.compile(r"\bjson\b", re.IGNORECASE)


def schema_in_texts(texts: list[str]) -> dict[str, Any] | None:
    """The largest JSON Schema object written inside prompt texts that ask for JSON."""
    best: dict[str, Any] | None = None
    decoder = json.JSONDecoder()
    for text in texts:
        if "{" not in text or not _MENTIONS_JSON.search(text):
            continue
        start = text.find("{")
        while start >= 0:
            try:
                value, end = decoder.raw_decode(text, start)
            except ValueError:
                start = text.find("{", start + 1)
                continue
            if _looks_like_schema(value) and (best is None or len(str(value)) > len(str(best))):
                best = value
            start = text.find("{", end)
    return best


def _looks_like_schema(value: Any) -> bool:
    return isinstance(value, dict) and (
        isinstance(value.get("properties"), dict) or "$defs" in value or "$ref" in value
    )


_ASKS_FOR_JSON = re.compile(
    r"json object|valid json|(?:in|as|with|return|respond\w*|answer\w*|output) (?:only )?json\b",
    re.IGNORECASE,
)


def asks_for_json(texts: list[str]) -> bool:
    """A prompt that asks in words for a JSON answer ("Respond with a single valid JSON
    object", "answer in JSON"): what JSON mode becomes for an upstream without it."""
    return any(_ASKS_FOR_JSON.search(t) for t in texts)
