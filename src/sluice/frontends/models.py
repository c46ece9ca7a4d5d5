"""`GET /v1/models` and `/v1/models/{id}` bodies in the caller's API shape.

A request carrying `anthropic-version` gets Anthropic's shape (`type`, `display_name`,
`created_at`), any other the OpenAI one (`object`, `created`, `owned_by`); the list and the
single model always agree. Sluice has no vendor catalogue, so the fields are derived:
`display_name` from the name (`claude-sonnet-4-5` → "Claude Sonnet 4.5"), the creation time
from a date in the name (`claude-3-5-haiku-20241022`), else from when this gateway started
offering it.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

_DATE = re.compile(r"-(20\d{2})-?(\d{2})-?(\d{2})$")
_UPPER = {"gpt": "GPT", "o1": "o1", "o3": "o3", "o4": "o4"}
STARTED = int(time.time())


def created(name: str, started: int = STARTED) -> int:
    """Unix seconds: the date in the model name, else `started`."""
    found = _DATE.search(name)
    if found is None:
        return started
    try:
        day = dt.date(int(found[1]), int(found[2]), int(found[3]))
    except ValueError:
        return started
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp())


def display_name(name: str) -> str:
    """A readable name: words capitalised, version digits joined (`3-5` → `3.5`)."""
    base = _DATE.sub("", name.rsplit("/", 1)[-1])
    words: list[str] = []
    for word in base.split("-"):
        if word.isdigit() and words and words[-1][-1:].isdigit():
            words[-1] += "." + word
        else:
            words.append(_UPPER.get(word.lower(), word[:1].upper() + word[1:]))
    return " ".join(words).replace("GPT ", "GPT-") or name


def anthropic_card(name: str) -> dict[str, Any]:
    stamp = dt.datetime.fromtimestamp(created(name), dt.UTC)
    return {
        "type": "model",
        "id": name,
        "display_name": display_name(name),
        "created_at": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def openai_card(name: str, owner: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created(name), "owned_by": owner}


def wants_anthropic(headers: Any) -> bool:
    return "anthropic-version" in headers


def anthropic_list(names: list[str]) -> dict[str, Any]:
    first, last = (names[0], names[-1]) if names else (None, None)
    return {
        "data": [anthropic_card(n) for n in names],
        "has_more": False,
        "first_id": first,
        "last_id": last,
    }
