"""Every row of the fidelity table, sent through a real gateway to the capturing upstream:
once to a model of the same API (the value arrives as sent), once to a model of the other
API (the documented mapping, drop, or a 400 naming the part and the model)."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from tests.fidelity.conftest import MODELS, ROW_HEADER, Capture, Gateway
from tests.fidelity.table import (
    ROWS,
    Absent,
    Expect,
    Kept,
    Mapped,
    Present,
    Refused,
    Row,
)
from tests.sse import parse_sse

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

MISSING = object()
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages"}
OTHER = {"openai": "anthropic", "anthropic": "openai"}


def at(obj: Any, path: str) -> Any:
    """The value at a dotted path with [i] indices, or MISSING."""
    for name, index in _STEP.findall(path):
        if index:
            if not isinstance(obj, list) or int(index) >= len(obj):
                return MISSING
            obj = obj[int(index)]
        elif isinstance(obj, dict) and name in obj:
            obj = obj[name]
        else:
            return MISSING
    return obj


def base_body(client: str, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if client == "anthropic":
        body["max_tokens"] = 50
    return body


async def call(
    gw: Gateway, client: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, Any]:
    async with gw.http.post(gw.url + PATHS[client], json=body, headers=headers) as resp:
        raw = await resp.read()
        if body.get("stream") and resp.status == 200:
            return resp.status, [data for _, data in parse_sse(raw)]
        return resp.status, orjson.loads(raw)


def check(expect: Expect, arrived: Any, sent: Any, row: Row, model: str, status: int) -> None:
    if isinstance(expect, Refused):
        assert status == 400, f"{row.id}: expected a 400, got {status}: {arrived}"
        message = str(at(arrived, "error.message"))
        assert expect.names in message and model in message, message
        return
    assert status == 200, f"{row.id}: {status} {arrived}"
    if isinstance(expect, Kept):
        keys = [expect.path] if expect.path else list(sent)
        for key in keys:
            want = at(sent, expect.sent_at or key)
            assert want is not MISSING, f"{row.id}: nothing sent at {key}"
            assert at(arrived, key) == want, f"{row.id}: {key}: {at(arrived, key)!r} != {want!r}"
    elif isinstance(expect, Mapped):
        assert at(arrived, expect.path) == expect.value, (
            f"{row.id}: {expect.path}: {at(arrived, expect.path)!r} != {expect.value!r}"
        )
    elif isinstance(expect, Present):
        assert at(arrived, expect.path) not in (MISSING, None, 0, "", [], {}), row.id
    elif isinstance(expect, Absent):
        assert at(arrived, expect.path) is MISSING, f"{row.id}: {expect.path} arrived"


def check_events(expect: Expect, events: list[Any], sent: list[Any], row: Row) -> None:
    """Stream rows: some event carries the expected value (Absent: none carries the path)."""
    assert events and events[-1] in ("[DONE]", {"type": "message_stop"}), row.id
    data = [e for e in events if isinstance(e, dict)]
    if isinstance(expect, Absent):
        assert all(at(e, expect.path) is MISSING for e in data), f"{row.id}: {expect.path}"
        return
    if isinstance(expect, Present):
        assert any(at(e, expect.path) not in (MISSING, None, 0) for e in data), row.id
        return
    assert isinstance(expect, Mapped), row.id
    values = [at(e, expect.path) for e in data]
    assert expect.value in values, f"{row.id}: {expect.path} values {values}"


@pytest.mark.parametrize("direction", ["same", "cross"])
@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
async def test_row(row: Row, direction: str, fresh: Capture, gateway: Gateway) -> None:
    capture = fresh
    expect = row.same if direction == "same" else row.cross
    if row.where in ("request", "header"):
        # The client speaks the row's API; the model is of the same or the other API.
        client: str = row.api
        model = MODELS[row.api if direction == "same" else OTHER[row.api]]
        body = base_body(client, model)
        headers = {ROW_HEADER: row.id}
        if row.where == "request":
            body.update(row.send)
        else:
            headers.update(row.send)
        status, answer = await call(gateway, client, body, headers)
        if isinstance(expect, Refused):
            assert not capture.seen, "a refused call must not reach the upstream"
            check(expect, answer, row.send, row, model, status)
            return
        assert status == 200, f"{row.id}: {status} {answer}"
        seen = capture.seen[-1]
        arrived = seen["body"] if row.where == "request" else seen["headers"]
        arrived = arrived if row.where == "request" else {k.lower(): v for k, v in arrived.items()}
        check(expect, arrived, row.send, row, model, status)
        return
    # Answers: the upstream speaks the row's API; the client the same or the other one.
    client = row.api if direction == "same" else OTHER[row.api]
    model = MODELS[row.api]
    body = base_body(client, model)
    if row.where == "stream":
        body["stream"] = True
    status, answer = await call(gateway, client, body, {ROW_HEADER: row.id})
    if row.where == "stream":
        assert status == 200, answer
        check_events(expect, answer, row.send, row)
        return
    check(expect, answer, row.send, row, model, status)
