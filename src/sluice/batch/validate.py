"""Checking a batch's input before anything runs: every bad line is reported by number.

OpenAI's input is a JSONL file, one request per line (`custom_id`, `method`, `url`,
`body`); Anthropic's is a list of `{custom_id, params}`. A line that is not JSON, lacks a
field, repeats a `custom_id` or names another endpoint is an error with its line number
(OpenAI's `errors.data[]`: code, message, param, line), never a 500; the batch then fails
as a whole, as OpenAI's does, and nothing is run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from sluice.batch.model import NewItem

MAX_CUSTOM_ID = 512
MAX_ERRORS = 100  # reported per batch; the count says how many more there were
ENDPOINTS = ("/v1/chat/completions",)


@dataclass(slots=True)
class Parsed:
    items: list[NewItem] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0

    def fail(self, line: int, code: str, message: str, param: str | None = None) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"code": code, "message": message, "param": param, "line": line})


def _custom_id(value: Any, seen: set[str], parsed: Parsed, line: int) -> str | None:
    if not isinstance(value, str) or not value:
        parsed.fail(
            line, "missing_required_parameter", "custom_id must be a non-empty string", "custom_id"
        )
        return None
    if len(value) > MAX_CUSTOM_ID:
        parsed.fail(
            line, "invalid_value", f"custom_id is over {MAX_CUSTOM_ID} characters", "custom_id"
        )
        return None
    if "\x00" in value:  # PostgreSQL text refuses NUL: the store would fail (a 500)
        parsed.fail(line, "invalid_value", "custom_id must not contain NUL", "custom_id")
        return None
    if value in seen:
        parsed.fail(
            line,
            "duplicate_custom_id",
            f"custom_id {value[:64]!r} is used by an earlier line",
            "custom_id",
        )
        return None
    seen.add(value)
    return value


def _body(value: Any, parsed: Parsed, line: int, param: str) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        parsed.fail(line, "invalid_request", f"{param} must be a JSON object", param)
        return None
    if not isinstance(value.get("model"), str) or not value["model"]:
        parsed.fail(
            line, "missing_required_parameter", f"{param}.model is required", f"{param}.model"
        )
        return None
    return value


def parse_openai(data: bytes, endpoint: str, max_items: int) -> Parsed:
    parsed = Parsed()
    seen: set[str] = set()
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed.fail(number, "invalid_json_line", "this line is not valid JSON")
            continue
        if not isinstance(line, dict):
            parsed.fail(number, "invalid_json_line", "each line must be a JSON object")
            continue
        custom_id = _custom_id(line.get("custom_id"), seen, parsed, number)
        if str(line.get("method", "")).upper() != "POST":
            parsed.fail(number, "invalid_value", "method must be POST", "method")
            continue
        if line.get("url") != endpoint:
            parsed.fail(
                number, "mismatched_endpoint", f"url must be the batch's endpoint {endpoint}", "url"
            )
            continue
        body = _body(line.get("body"), parsed, number, "body")
        if custom_id is None or body is None:
            continue
        if len(parsed.items) >= max_items:
            parsed.fail(number, "too_many_requests", f"a batch holds at most {max_items} requests")
            break
        parsed.items.append(NewItem(number, custom_id, body))
    if not parsed.items and not parsed.errors:
        parsed.fail(0, "empty_file", "the input file holds no requests")
    return parsed


def parse_anthropic(requests: Any, max_items: int) -> Parsed:
    parsed = Parsed()
    if not isinstance(requests, list) or not requests:
        parsed.fail(0, "invalid_request", "requests must be a non-empty list", "requests")
        return parsed
    if len(requests) > max_items:
        parsed.fail(0, "invalid_request", f"a batch holds at most {max_items} requests", "requests")
        return parsed
    seen: set[str] = set()
    for number, entry in enumerate(requests):
        if not isinstance(entry, dict):
            parsed.fail(number, "invalid_request", "each request must be an object")
            continue
        custom_id = _custom_id(entry.get("custom_id"), seen, parsed, number)
        body = _body(entry.get("params"), parsed, number, "params")
        if custom_id is not None and body is not None:
            parsed.items.append(NewItem(number, custom_id, body))
    return parsed
