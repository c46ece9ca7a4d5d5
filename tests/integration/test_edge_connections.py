"""The connection layer: parser errors as API JSON without logging credentials, a header
timeout against slowloris, and a per-address connection cap."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import orjson
import pytest

from sluice import server
from tests.conftest import gateway_config

pytestmark = pytest.mark.integration


@pytest.fixture
async def port(sim_url: str) -> AsyncIterator[int]:
    config = gateway_config(sim_url)
    edge = config.server.edge.model_copy(
        update={"header_timeout_s": 0.5, "max_connections_per_address": 4}
    )
    config = config.model_copy(update={"server": config.server.model_copy(update={"edge": edge})})
    runner, bound = await server.start(config)
    yield bound
    await runner.cleanup()


async def exchange(port: int, raw: bytes, wait_s: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    try:
        async with asyncio.timeout(wait_s):
            return await reader.read()
    finally:
        writer.close()


async def test_parser_errors_are_json_and_never_log_the_header(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-proj-SECRETSECRETSECRET"
    raw = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + secret.encode() + b"\x01\r\ncontent-length: 2\r\n\r\n{}"
    )
    with caplog.at_level(logging.DEBUG):
        answer = await exchange(port, raw)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400", head
    assert b"application/json" in head.lower()
    error = orjson.loads(payload)["error"]
    assert error["code"] == "malformed_http_request"
    assert secret not in caplog.text
    anthropic = raw.replace(b"/v1/chat/completions", b"/v1/messages")
    _, _, payload = (await exchange(port, anthropic)).partition(b"\r\n\r\n")
    assert orjson.loads(payload)["type"] == "error"


async def test_slowloris_connection_is_closed_after_the_header_timeout(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    try:
        async with asyncio.timeout(10):
            while True:  # keep trickling one header byte at a time, as slowloris does
                writer.write(b"X")
                await writer.drain()
                if reader.at_eof():
                    break
                await asyncio.sleep(0.1)
                if await asyncio.wait_for(reader.read(1), 0.01) == b"":
                    break
    except (TimeoutError, ConnectionError):
        pass
    finally:
        writer.close()
    assert time.monotonic() - started < 5  # closed near 0.5 s, not held


async def test_connections_per_address_are_capped(port: int) -> None:
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    for _, writer in held:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # unfinished: held open
    await asyncio.sleep(0.1)
    answer = await exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 429"), answer[:80]
    assert orjson.loads(answer.partition(b"\r\n\r\n")[2])["error"]["code"] == (
        "too_many_connections"
    )
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.2)
    answer = await exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
