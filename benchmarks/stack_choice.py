"""Measure the stack choices behind Sluice: orjson, the upstream client, the aiohttp server.

Usage: .venv/bin/python benchmarks/stack_choice.py

Three sections, each printing a compact table:

1. JSON: orjson vs stdlib json, loads+dumps of a chat request, a chat.completion response
   and a stream chunk (µs per loads+dumps pair, timeit, best of several repeats).
2. Upstream HTTP client against the project's simulator (`sluice sim`, zero latency):
   aiohttp.ClientSession vs Sluice's own pool (`sluice.providers.transport`, httptools)
   vs httpx.AsyncClient, all on uvloop, closed loop at
   concurrency 1 and 64; requests/s, p50/p99 latency and client CPU seconds per 1000
   requests (time.process_time of the client process, which runs alone in a child).
3. HTTP server: a minimal echo-JSON endpoint on aiohttp.web, on Starlette+uvicorn and as
   a raw ASGI app on uvicorn (uvloop + httptools), each in its own child process, loaded
   by wrk (C, one thread) at -c1 and -c64; requests/s, p50/p99 and the server process's
   CPU seconds per 1000 requests (from /proc, Linux).

Only loopback traffic (127.0.0.1). Every loop is bounded by a count or a deadline, and
every child process is stopped on exit. httpx, uvicorn, httptools and starlette are not
Sluice dependencies: a comparison whose library is missing is skipped with a message.

The script re-invokes itself for its children:
  --serve {aiohttp,starlette,asgi} PORT          one of the servers of section 3
  --client {aiohttp,sluice,httpx} URL CONC N WARMUP     one run of section 2 (prints one JSON line)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
CHILD_MAX_SECONDS = 180.0  # a server child exits by itself after this, whatever happens
CLIENT_MAX_SECONDS = 60.0  # a client run stops after this even if N was not reached
SERVER_CONCURRENCIES = (1, 64)
CLIENT_CONCURRENCIES = (1, 64)

# --------------------------------------------------------------------------- payloads

CHAT_REQUEST: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {
            "role": "user",
            "content": "Summarise the main trade-offs between optimistic and pessimistic "
            "locking for a write-heavy inventory service in three short bullet points.",
        }
    ],
    "temperature": 0.2,
    "max_tokens": 256,
    "stream": False,
    "user": "user-4f1c2a",
}

CHAT_RESPONSE: dict[str, Any] = {
    "id": "chatcmpl-9x8Yb3kQmZt7LhR2VwP1sN0aF",
    "object": "chat.completion",
    "created": 1735689600,
    "model": "gpt-4o-mini-2024-07-18",
    "system_fingerprint": "fp_0ba0d124f1",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "- Optimistic: no lock waits, but retries pile up under heavy "
                "writes.\n- Pessimistic: serialises writers, predictable.\n- Hot rows "
                "favour pessimistic locks.",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 38,
        "completion_tokens": 61,
        "total_tokens": 99,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    },
}

STREAM_CHUNK: dict[str, Any] = {
    "id": "chatcmpl-9x8Yb3kQmZt7LhR2VwP1sN0aF",
    "object": "chat.completion.chunk",
    "created": 1735689600,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {"index": 0, "delta": {"content": " locking"}, "logprobs": None, "finish_reason": None}
    ],
}

# The small request the client and server sections send.
SMALL_REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello."}],
    "max_tokens": 16,
}


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def have(*modules: str) -> list[str]:
    """The names among `modules` that cannot be imported."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


# --------------------------------------------------------------------------- 1. JSON


def bench_json(number: int, repeat: int) -> None:
    import orjson

    say(
        "== 1. JSON: loads+dumps round trip, µs per op (bytes in, bytes out; best of "
        f"{repeat} x {number}) =="
    )
    say("   stdlib = json.loads(bytes) + json.dumps(obj, separators=(',', ':')).encode()")
    cases = [
        ("chat request", CHAT_REQUEST),
        ("chat.completion", CHAT_RESPONSE),
        ("stream chunk", STREAM_CHUNK),
    ]
    say(f"{'payload':<17}{'bytes':>6}{'orjson µs':>11}{'json µs':>10}{'json/orjson':>13}")
    for name, obj in cases:
        raw = orjson.dumps(obj)

        def with_orjson(raw: bytes = raw) -> bytes:
            return orjson.dumps(orjson.loads(raw))

        def with_stdlib(raw: bytes = raw) -> bytes:
            return json.dumps(json.loads(raw), separators=(",", ":")).encode()

        assert json.loads(with_stdlib()) == json.loads(with_orjson()) == obj
        fast = min(timeit.repeat(with_orjson, number=number, repeat=repeat)) / number * 1e6
        slow = min(timeit.repeat(with_stdlib, number=number, repeat=repeat)) / number * 1e6
        say(f"{name:<17}{len(raw):>6}{fast:>11.2f}{slow:>10.2f}{slow / fast:>12.1f}x")
    say()


# --------------------------------------------------------------------------- processes


class Children:
    """Every child process this script starts; all are stopped by `stop_all`."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs:
            self.stop(proc)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited {proc.returncode}: {log.read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s")


@contextmanager
def child(
    children: Children, args: list[str], ready_url: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    proc = children.spawn(args, log)
    try:
        wait_ready(ready_url, proc, log)
        yield proc
    finally:
        children.stop(proc)


def sluice_command() -> list[str]:
    exe = Path(sys.executable).parent / "sluice"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sluice.cli"]


# --------------------------------------------------------------------------- 2. client


async def _closed_loop(
    send: Callable[[], Any], concurrency: int, total: int, deadline: float
) -> tuple[list[float], int]:
    """`concurrency` workers share `total` requests; each sends its next as soon as the
    previous one finishes. Returns latencies (ms) and the error count."""
    latencies: list[float] = []
    errors = 0
    remaining = total

    async def worker() -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            start = time.perf_counter()
            try:
                ok = await send()
            except Exception:  # a failed request counts, the run goes on
                ok = False
            if ok:
                latencies.append((time.perf_counter() - start) * 1000)
            else:
                errors += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


async def _client_run(
    lib: str, url: str, concurrency: int, total: int, warmup: int
) -> dict[str, Any]:
    body = json.dumps(SMALL_REQUEST).encode()
    headers = {"content-type": "application/json"}
    deadline = time.monotonic() + CLIENT_MAX_SECONDS
    closer: Callable[[], Any]
    if lib == "aiohttp":
        import aiohttp

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))

        async def send() -> bool:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status == 200

        closer = session.close
    elif lib == "sluice":
        from sluice.providers.transport import Pool

        pool = Pool(64)

        async def send() -> bool:
            resp = await pool.post(url, headers, body, 10.0)
            try:
                await resp.read()
            finally:
                resp.release()
            return resp.status == 200

        closer = pool.close
    else:
        try:
            import httpx
        except ImportError:  # the same library under its newer name (pydantic/httpx2)
            import httpx2 as httpx  # type: ignore[no-redef]

        client = httpx.AsyncClient(
            http1=True,
            http2=False,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
        )

        async def send() -> bool:
            resp = await client.post(url, content=body, headers=headers)
            return resp.status_code == 200

        closer = client.aclose
    try:
        await _closed_loop(send, concurrency, warmup, deadline)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        latencies, errors = await _closed_loop(send, concurrency, total, deadline)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await closer()
    done = len(latencies)
    return {
        "ok": done,
        "errors": errors,
        "rps": done / wall if wall else 0.0,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "cpu_per_1k": cpu / done * 1000 if done else float("nan"),
    }


def client_child(lib: str, url: str, concurrency: int, total: int, warmup: int) -> None:
    import uvloop

    result = uvloop.run(_client_run(lib, url, concurrency, total, warmup))
    say(json.dumps(result))


def bench_client(children: Children, tmp: Path, total: int, warmup: int) -> None:
    say(
        f"== 2. Upstream client -> sluice sim (zero latency), uvloop, {total} POSTs after "
        f"{warmup} warm-up =="
    )
    if have("uvloop"):
        say("   SKIPPED: uvloop is not installed")
        return
    libs = ["aiohttp", "sluice"]
    if have("httpx") and have("httpx2"):
        say(
            "   httpx not installed: skipping the httpx comparison "
            "(pip install httpx to include it)"
        )
    else:
        libs.append("httpx")
    port = free_port()
    sim_url = f"http://{HOST}:{port}"
    args = [*sluice_command(), "sim", "--host", HOST, "--port", str(port)]
    rows = []
    with child(children, args, sim_url + "/healthz", tmp / "sim.log"):
        for conc in CLIENT_CONCURRENCIES:
            for lib in libs:
                cmd = [
                    sys.executable,
                    __file__,
                    "--client",
                    lib,
                    sim_url + "/v1/chat/completions",
                    str(conc),
                    str(total),
                    str(warmup),
                ]
                proc = children.spawn(cmd, tmp / f"client-{lib}-{conc}.log")
                try:
                    proc.wait(CLIENT_MAX_SECONDS * 2 + 30)
                finally:
                    children.stop(proc)
                text = (tmp / f"client-{lib}-{conc}.log").read_text()
                if proc.returncode != 0:
                    say(f"   {lib} c={conc} failed: {text[-800:]}")
                    continue
                rows.append((lib, conc, json.loads(text.strip().splitlines()[-1])))
    say(
        f"{'client':<9}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU s/1k req':>14}{'errors':>8}"
    )
    for lib, conc, r in rows:
        say(
            f"{lib:<9}{conc:>5}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}"
            f"{r['cpu_per_1k']:>14.3f}{r['errors']:>8}"
        )
    say()


# --------------------------------------------------------------------------- 3. server


def serve_aiohttp(port: int) -> None:
    import orjson
    import uvloop
    from aiohttp import web

    async def echo(request: web.Request) -> web.Response:
        obj = orjson.loads(await request.read())
        return web.Response(body=orjson.dumps(obj), content_type="application/json")

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/echo", echo)
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, HOST, port).start()
        try:
            await asyncio.sleep(CHILD_MAX_SECONDS)  # stopped by SIGTERM long before this
        finally:
            await runner.cleanup()

    uvloop.run(main())


def _starlette_app() -> Any:
    import orjson
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def echo(request: Request) -> Response:
        obj = orjson.loads(await request.body())
        return Response(orjson.dumps(obj), media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    return Starlette(
        routes=[Route("/echo", echo, methods=["POST"]), Route("/healthz", healthz, methods=["GET"])]
    )


def _raw_asgi_app() -> Any:
    import orjson

    json_headers = [(b"content-type", b"application/json")]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        more = True
        while more:  # bounded by the request body, which ends with more_body=False
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        if scope["path"] == "/echo" and scope["method"] == "POST":
            status, body = 200, orjson.dumps(orjson.loads(b"".join(chunks)))
        elif scope["path"] == "/healthz":
            status, body = 200, b'{"ok":true}'
        else:
            status, body = 404, b'{"error":"not found"}'
        headers = [*json_headers, (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def serve_uvicorn(kind: str, port: int) -> None:
    import uvicorn

    app = _starlette_app() if kind == "starlette" else _raw_asgi_app()
    config = uvicorn.Config(
        app,
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
    server = uvicorn.Server(config)
    timer = threading.Timer(CHILD_MAX_SECONDS, lambda: setattr(server, "should_exit", True))
    timer.daemon = True
    timer.start()
    server.run()


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else float("nan")


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process so far (Linux /proc); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, lua: Path, conc: int, seconds: int, pid: int = 0) -> dict[str, Any]:
    cpu0 = cpu_seconds(pid) if pid else float("nan")
    cmd = ["wrk", "-t1", f"-c{conc}", f"-d{seconds}s", "--latency", "-s", str(lua), url]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    cpu = cpu_seconds(pid) - cpu0 if pid else float("nan")
    done = re.search(r"(\d+) requests in", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    pcts = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, flags=re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": float(rps.group(1)) if rps else float("nan"),
        "p50": _wrk_ms(pcts.get("50", "")),
        "p99": _wrk_ms(pcts.get("99", "")),
        "errors": (int(bad.group(1)) if bad else 0),
        "sock": sock.group(1) if sock else "",
        "cpu_per_1k": cpu / int(done.group(1)) * 1000 if done and int(done.group(1)) else 0.0,
    }


def bench_server(children: Children, tmp: Path, seconds: int) -> None:
    say(f"== 3. Server: echo-JSON endpoint (orjson in all), wrk -t1, {seconds}s per run ==")
    if shutil.which("wrk") is None:
        say("   SKIPPED: wrk is not installed (apt-get install wrk)")
        return
    if have("uvloop"):
        say("   SKIPPED: uvloop is not installed")
        return
    kinds = ["aiohttp"]
    missing = have("uvicorn", "httptools")
    if missing:
        say(f"   {', '.join(missing)} not installed: skipping starlette and raw ASGI")
    elif have("starlette"):
        say("   starlette not installed: skipping the Starlette comparison")
        kinds.append("asgi")
    else:
        kinds += ["starlette", "asgi"]
    lua = tmp / "post.lua"
    lua.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(json.dumps(SMALL_REQUEST))}\n"
    )
    names = {"aiohttp": "aiohttp.web", "starlette": "starlette+uvicorn", "asgi": "raw ASGI+uvicorn"}
    rows = []
    for kind in kinds:
        port = free_port()
        base = f"http://{HOST}:{port}"
        args = [sys.executable, __file__, "--serve", kind, str(port)]
        with child(children, args, base + "/healthz", tmp / f"serve-{kind}.log") as proc:
            run_wrk(base + "/echo", lua, 16, 1)  # warm-up, not reported
            for conc in SERVER_CONCURRENCIES:
                result = run_wrk(base + "/echo", lua, conc, seconds, proc.pid)
                rows.append((names[kind], conc, result))
    say("   CPU s/1k req = the server process's user+system CPU (/proc) per 1000 requests")
    say(
        f"{'server':<19}{'conc':>5}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU s/1k req':>14}{'errors':>8}"
    )
    for name, conc, r in rows:
        extra = f"  socket errors: {r['sock']}" if r["sock"] else ""
        say(
            f"{name:<19}{conc:>5}{r['rps']:>9.0f}{r['p50']:>9.3f}{r['p99']:>9.3f}"
            f"{r['cpu_per_1k']:>14.3f}{r['errors']:>8}{extra}"
        )
    say()


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--client", nargs=5, metavar=("LIB", "URL", "C", "N", "W"), help=argparse.SUPPRESS
    )
    parser.add_argument("--requests", type=int, default=3000, help="client requests per run")
    parser.add_argument("--warmup", type=int, default=200, help="client warm-up requests")
    parser.add_argument("--seconds", type=int, default=5, help="wrk seconds per server run")
    parser.add_argument("--json-number", type=int, default=20_000, help="timeit loops")
    parser.add_argument(
        "--only",
        choices=["json", "client", "server"],
        action="append",
        help="run only these sections (repeatable)",
    )
    args = parser.parse_args()

    if args.serve:
        kind, port = args.serve[0], int(args.serve[1])
        if kind == "aiohttp":
            serve_aiohttp(port)
        else:
            serve_uvicorn(kind, port)
        return 0
    if args.client:
        lib, url, conc, total, warmup = args.client
        client_child(lib, url, int(conc), int(total), int(warmup))
        return 0

    sections = args.only or ["json", "client", "server"]
    say(
        f"Sluice stack benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        "loopback only"
    )
    say()
    started = time.monotonic()
    children = Children()
    try:
        with tempfile.TemporaryDirectory(prefix="sluice-stack-") as tmpdir:
            tmp = Path(tmpdir)
            if "json" in sections:
                bench_json(args.json_number, 5)
            if "client" in sections:
                bench_client(children, tmp, args.requests, args.warmup)
            if "server" in sections:
                bench_server(children, tmp, args.seconds)
    finally:
        children.stop_all()
    with suppress(Exception):
        alive = [p.pid for p in children.procs if p.poll() is None]
        say(f"done in {time.monotonic() - started:.0f}s; children still running: {alive or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
