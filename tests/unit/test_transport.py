"""The lean HTTP/1.1 pool (`sluice.providers.transport`) against scripted servers on loopback:
framing (length, chunked, end of connection), compression, keep-alive reuse, the connection
limit, failures. What both transports must do is tested on both in
test_upstream_transports.py; this file keeps what is particular to the pool."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import ssl
import struct
import subprocess
from pathlib import Path

import pytest

from sluice.providers.transport import BadResponse, ConnectFailed, Disconnected, Pool, Target
from tests.unit.scripted_http import ok, send, serve


async def post(pool: Pool, url: str, body: bytes = b"{}") -> tuple[int, bytes]:
    resp = await pool.post(url, {"content-type": "application/json"}, body, 5.0)
    try:
        return resp.status, await resp.read()
    finally:
        resp.release()


async def test_request_head_and_keep_alive_reuse() -> None:
    async with serve(ok(b'{"a":1}', b"x-one: 1\r\n")) as (url, server):
        pool = Pool(4)
        for _ in range(3):
            assert await post(pool, url, b'{"q":2}') == (200, b'{"a":1}')
        assert server.connections == 1  # one connection, reused
        head = server.requests[0].split(b"\r\n")
        assert head[0] == b"POST /v1/x?y=1 HTTP/1.1"
        assert b"content-length: 7" in head and b"content-type: application/json" in head
        assert server.requests[0].endswith(b'{"q":2}')
        await pool.close()


async def test_chunked_gzip_and_end_of_connection_bodies() -> None:
    packed = gzip.compress(b"hello world")

    async def chunked(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n"
        )
        for i in range(0, len(packed), 5):
            piece = packed[i : i + 5]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        return True

    until_close = send(b"HTTP/1.1 200 OK\r\n\r\nall of it", keep=False)

    pool = Pool(4)
    async with serve(chunked) as (url, _):
        assert await post(pool, url) == (200, b"hello world")
    async with serve(until_close) as (url, server):
        assert await post(pool, url) == (200, b"all of it")
        assert await post(pool, url) == (200, b"all of it")
        assert server.connections == 2  # not reused: the body ended with the connection
    await pool.close()


async def test_stream_chunks_arrive_as_sent() -> None:
    gate = asyncio.Event()

    async def reply(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await gate.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        return True

    async with serve(reply) as (url, _):
        pool = Pool(1)
        resp = await pool.post(url, {}, b"", 5.0)
        got = []
        async for chunk in resp.chunks():
            got.append(chunk)
            gate.set()
        resp.release()
        assert got == [b"first", b"second"]
        await pool.close()


async def test_a_connection_dropped_as_a_request_goes_out_is_not_resent() -> None:
    """The upstream drops a kept-alive connection just as a request goes out on it (its idle
    timeout raced ours): the call fails once, and is not silently sent a second time (the
    executor's retry does that, counted in x-sluice-attempts). The next call opens a new
    connection. A connection that is closed while it sits idle is never picked at all."""
    answered: set[int] = set()

    async def first_only(_: bytes, writer: asyncio.StreamWriter) -> bool:
        if id(writer) in answered:
            return False  # second request on this connection: hang up without a word
        answered.add(id(writer))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return True

    async with serve(first_only) as (url, server):
        pool = Pool(2)
        assert await post(pool, url) == (200, b"ok")
        with pytest.raises(Disconnected):
            await post(pool, url)
        assert len(server.requests) == 2  # the dropped request went out once
        assert await post(pool, url) == (200, b"ok")
        assert server.connections == 2
        await pool.close()

    hang_up_after = send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", keep=False)
    async with serve(hang_up_after) as (url, server):
        pool = Pool(2)
        assert await post(pool, url) == (200, b"ok")
        await asyncio.sleep(0.05)
        assert await post(pool, url) == (200, b"ok")
        assert server.connections == 2 and len(server.requests) == 2
        await pool.close()


async def test_limit_makes_callers_wait_for_a_connection() -> None:
    release = asyncio.Event()

    async def slow(_: bytes, writer: asyncio.StreamWriter) -> bool:
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nk")
        await writer.drain()
        return True

    async with serve(slow) as (url, server):
        pool = Pool(2)
        calls = [asyncio.create_task(post(pool, url)) for _ in range(5)]
        await asyncio.sleep(0.1)
        assert server.connections == 2 and len(server.requests) == 2
        release.set()
        assert await asyncio.gather(*calls) == [(200, b"k")] * 5
        assert server.connections == 2
        await pool.close()


async def test_cancelled_call_closes_its_connection_and_frees_the_slot() -> None:
    async def never(_: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(30)
        return False

    async with serve(never) as (url, server):
        pool = Pool(1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await post(pool, url)
        assert pool._open[("127.0.0.1", Target.parse(url).port, False)] == 0
        assert server.connections == 1
    await pool.close()


async def test_failures_have_their_own_types() -> None:
    pool = Pool(1)
    async with serve(ok(b"")) as (url, _):
        pass  # closed: nothing listens on that port any more
    with pytest.raises(ConnectFailed):
        await post(pool, url)

    async with serve(send(b"SMTP ready\r\n\r\n")) as (url, _):
        with pytest.raises(BadResponse):
            await post(pool, url)

    cut = send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part", keep=False)
    async with serve(cut) as (url, _):
        with pytest.raises(Disconnected):
            await post(pool, url)
    with pytest.raises(ValueError, match="line break"):
        await pool.post(url, {"x-evil": "a\r\nx-injected: 1"}, b"", 1.0)
    await pool.close()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
    command += f" -addext subjectAltName=IP:127.0.0.1 -keyout {key} -out {cert}"
    subprocess.run(command.split(), check=True, capture_output=True)
    return cert, key


async def test_https_verifies_the_certificate(self_signed: tuple[Path, Path]) -> None:
    """TLS as providers use it: the certificate must be trusted and name the host."""
    cert, key = self_signed
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    async with serve(ok(b"secure"), tls=server_tls) as (url, server):
        assert url.startswith("https://")
        trusting = Pool(2, ssl_context=ssl.create_default_context(cafile=str(cert)))
        assert await post(trusting, url) == (200, b"secure")
        assert await post(trusting, url) == (200, b"secure")
        assert server.connections == 1
        await trusting.close()
        with pytest.raises(ConnectFailed):  # the system's CAs do not know this certificate
            await post(Pool(2), url)


async def test_an_extra_answer_makes_the_connection_unusable() -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with serve(send(answer + answer)) as (url, server):  # one request, two answers
        pool = Pool(2)
        assert await post(pool, url) == (200, b"ok")
        await asyncio.sleep(0.05)
        assert await post(pool, url) == (200, b"ok")  # on a new connection, not the spoiled one
        assert server.connections == 2
        await pool.close()


def test_ipv6_hosts_are_bracketed_in_the_host_header() -> None:
    assert Target.parse("http://[::1]:8080/v1/x").host_header == "[::1]:8080"
    assert Target.parse("https://api.example.com/v1").host_header == "api.example.com"


async def test_large_bodies_whole_and_streamed() -> None:
    """Bodies far above the read-pause threshold arrive whole with `read` (which must not
    pause reading) and in order with `chunks` (which pauses and resumes)."""
    big = bytes(range(256)) * (12 * 1024)  # 3 MiB

    async with serve(ok(big)) as (url, _):
        pool = Pool(1)
        async with asyncio.timeout(10):  # a paused read would wait forever
            assert await post(pool, url) == (200, big)
        resp = await pool.post(url, {}, b"", 5.0)
        got = bytearray()
        async for chunk in resp.chunks():
            got += chunk
            await asyncio.sleep(0)  # a slow reader
        resp.release()
        assert bytes(got) == big
        await pool.close()


async def test_body_cut_by_a_reset_or_a_broken_gzip_is_an_error_not_an_answer() -> None:
    async def reset_mid_body(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\npartial-")  # length: until the connection ends
        await writer.drain()
        await asyncio.sleep(0.05)  # the client has read that much
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # linger 0: a reset, not a clean close
        return False

    packed = gzip.compress(b"x" * 5000)
    half = packed[: len(packed) // 2]

    half_gzip = ok(half, b"content-encoding: gzip\r\n")

    pool = Pool(2)
    async with serve(reset_mid_body) as (url, _):
        with pytest.raises(Disconnected):
            await post(pool, url)
    async with serve(half_gzip) as (url, _):
        with pytest.raises(BadResponse, match="cut short"):
            await post(pool, url)
    await pool.close()


async def test_trailers_do_not_leak_into_the_next_answer() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\nx-trailer: t\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
    ]

    async def reply(_: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answers.pop(0))
        await writer.drain()
        return True

    async with serve(reply) as (url, server):
        pool = Pool(1)
        for _ in range(2):
            resp = await pool.post(url, {}, b"", 5.0)
            assert await resp.read() == b"ok"
            assert "x-trailer" not in resp.headers
            resp.release()
        assert server.connections == 1
        await pool.close()


async def test_waiters_are_served_in_order_and_close_frees_everything() -> None:
    """With one connection, a caller that was already waiting is served before a caller that
    keeps coming back; after close, waiting callers fail instead of hanging."""
    async with serve(ok(b"k")) as (url, _):
        pool = Pool(1)
        order: list[str] = []

        async def greedy() -> None:
            for _ in range(5):
                await post(pool, url)
                order.append("greedy")

        async def patient() -> None:
            await asyncio.sleep(0)  # queue up behind greedy's first call
            await post(pool, url)
            order.append("patient")

        await asyncio.gather(greedy(), patient())
        assert order.index("patient") <= 1

        release = asyncio.Event()

        async def slow(_: bytes, writer: asyncio.StreamWriter) -> bool:
            await release.wait()
            return False

    async with serve(slow) as (url2, _):
        busy = asyncio.create_task(post(pool, url2))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(post(pool, url2))
        await asyncio.sleep(0.05)
        await pool.close()
        with pytest.raises(Disconnected, match="closed"):
            async with asyncio.timeout(5):  # not left waiting for ever
                await waiting
        busy.cancel()
        release.set()
        with pytest.raises(Disconnected):
            await pool.post(url, {}, b"", 1.0)


async def test_a_request_the_upstream_drops_late_is_not_sent_twice() -> None:
    answered: set[int] = set()

    async def then_drop(request: bytes, writer: asyncio.StreamWriter) -> bool:
        if id(writer) in answered:
            await asyncio.sleep(0.4)  # working on it... then the connection breaks
            return False
        answered.add(id(writer))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        return True

    async with serve(then_drop) as (url, server):
        pool = Pool(1)
        assert await post(pool, url) == (200, b"ok")
        with pytest.raises(Disconnected):
            await post(pool, url)
        assert len(server.requests) == 2  # the dropped one went out once
        await pool.close()
