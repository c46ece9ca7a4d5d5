"""Parse SSE bytes in tests (the adapters have their own incremental reader)."""

from __future__ import annotations

from typing import Any

import orjson


def parse_sse(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) per event; `[DONE]` is kept as the string."""
    out: list[tuple[str | None, Any]] = []
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        text = "\n".join(data)
        out.append((event, text if text == "[DONE]" else orjson.loads(text)))
    return out
