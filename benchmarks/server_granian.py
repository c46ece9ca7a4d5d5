"""Issue 20: granian (Rust HTTP server, RSGI) against aiohttp.web for the gateway's hot path.

Not a dependency: `pip install granian` to run it. Both servers run the same minimal proxy
handler — read the caller's JSON body, parse it with orjson, POST it to Sluice's simulator
with one shared aiohttp client session, and answer with the upstream body (JSON) or pass the
upstream's SSE bytes through as they arrive (stream) — so the difference is the server side
alone (accepting, parsing, writing). Each server runs in its own process (granian: one worker,
one runtime thread, uvloop); the load is Sluice's closed-loop Python generator
(`sluice.bench.load.run_load`) in this process; rounds alternate the servers. Reported:
requests/s, p50/p99, and the server's CPU per request (its whole process tree, user + system).

    .venv/bin/pip install granian
    .venv/bin/python benchmarks/server_granian.py [--seconds 8] [--rounds 3] [--conc 1,64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:8089") + "/v1/chat/completions"
_JSON = [(b"content-type", b"application/json")]


CLIENT = os.environ.get("BENCH_CLIENT", "aiohttp")  # or pyreqwest (benchmarks/floor.py)


class _Upstream:
    session: aiohttp.ClientSession | None = None
    reqwest: Any = None

    @classmethod
    def rq(cls) -> Any:
        if cls.reqwest is None:
            from pyreqwest.client import ClientBuilder

            cls.reqwest = ClientBuilder().max_connections(256).error_for_status(False).build()
        return cls.reqwest

    @classmethod
    def get(cls) -> aiohttp.ClientSession:
        if cls.session is None:
            cls.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256), skip_auto_headers=["user-agent"]
            )
        return cls.session


# ---- the aiohttp.web server ------------------------------------------------------------


def serve_aiohttp(port: int) -> None:
    import uvloop
    from aiohttp import web

    async def chat(request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        raw = orjson.dumps(body)
        if CLIENT == "pyreqwest":
            return await chat_reqwest(request, body, raw)
        async with _Upstream.get().post(UPSTREAM, data=raw, headers=dict(_JSON_STR)) as up:
            if not body.get("stream"):
                return web.Response(body=await up.read(), content_type="application/json")
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def chat_reqwest(request: web.Request, body: Any, raw: bytes) -> web.StreamResponse:
        post = _Upstream.rq().post(UPSTREAM).headers(dict(_JSON_STR)).body_bytes(raw)
        if not body.get("stream"):
            up = await post.build().send()
            data = (await up.bytes()).to_bytes()
            return web.Response(body=data, content_type="application/json")
        async with post.streamed_read_buffer_limit(0).build_streamed() as up:
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            while (chunk := await up.body_reader.read_chunk()) is not None:
                await resp.write(chunk.to_bytes())
            await resp.write_eof()
            return resp

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def close(_: web.Application) -> None:
        if _Upstream.session is not None:
            await _Upstream.session.close()

    app = web.Application()
    app.on_cleanup.append(close)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/healthz", healthz)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


_JSON_STR = [("content-type", "application/json")]


# ---- the granian RSGI app (granian --interface rsgi server_granian:rsgi_app) -------------


async def rsgi_app(scope: Any, proto: Any) -> None:
    if scope.path == "/healthz":
        proto.response_str(200, [("content-type", "text/plain")], "ok")
        return
    body = orjson.loads(await proto())
    raw = orjson.dumps(body)
    if CLIENT == "pyreqwest":
        post = _Upstream.rq().post(UPSTREAM).headers(dict(_JSON_STR)).body_bytes(raw)
        if not body.get("stream"):
            up = await post.build().send()
            proto.response_bytes(200, _JSON_STR, (await up.bytes()).to_bytes())
            return
        async with post.streamed_read_buffer_limit(0).build_streamed() as sup:
            transport = proto.response_stream(200, [("content-type", "text/event-stream")])
            while (chunk := await sup.body_reader.read_chunk()) is not None:
                await transport.send_bytes(chunk.to_bytes())
        return
    async with _Upstream.get().post(UPSTREAM, data=raw, headers=dict(_JSON_STR)) as up:
        if not body.get("stream"):
            proto.response_bytes(200, _JSON_STR, await up.read())
            return
        transport = proto.response_stream(200, [("content-type", "text/event-stream")])
        async for chunk in up.content.iter_any():
            await transport.send_bytes(chunk)


# ---- the driver -----------------------------------------------------------------------


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo.extend(int(c) for c in task.read_text().split())
            except OSError:
                continue
    return pids


def _cpu(pid: int) -> float:
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def main() -> None:
    from sluice.bench.load import run_load
    from sluice.bench.processes import free_port, start_sim

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--conc", default="1,64")
    args = parser.parse_args()
    here = Path(__file__).parent
    with tempfile.TemporaryDirectory() as tmp:
        sim = start_sim(Path(tmp))
        env = {**os.environ, "BENCH_UPSTREAM": sim.url, "PYTHONPATH": str(here)}
        procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        try:
            port = free_port()
            procs["aiohttp.web"] = (
                subprocess.Popen([sys.executable, __file__, "--serve-aiohttp", str(port)], env=env),
                f"http://127.0.0.1:{port}",
            )
            port = free_port()
            granian = str(Path(sys.executable).parent / "granian")
            procs["granian rsgi"] = (
                subprocess.Popen(
                    [
                        granian,
                        "--interface",
                        "rsgi",
                        "--port",
                        str(port),
                        "--workers",
                        "1",
                        "--runtime-threads",
                        "1",
                        "--loop",
                        "uvloop",
                        "--log-level",
                        "warning",
                        "--no-ws",
                        "server_granian:rsgi_app",
                    ],
                    env=env,
                    cwd=here,
                ),
                f"http://127.0.0.1:{port}",
            )
            for proc, url in procs.values():
                _wait(url + "/healthz", proc)
            say(
                f"{'server':<14}{'mode':<8}{'conc':>5}{'round':>6} | {'rps':>7}{'p50 ms':>8}"
                f"{'p99 ms':>8}{'err':>5} | {'CPU µs/req':>10}"
            )
            for stream in (False, True):
                body = orjson.dumps(
                    {
                        "model": "gpt-4o-mini",
                        "messages": [{"role": "user", "content": "Summarise pooling."}],
                        "max_tokens": 64,
                        "stream": stream,
                    }
                )
                for c in [int(x) for x in args.conc.split(",")]:
                    for r in range(1, args.rounds + 1):
                        for name, (proc, url) in procs.items():
                            target = url + "/v1/chat/completions"
                            before = _cpu(proc.pid)
                            res = asyncio.run(
                                run_load(
                                    target,
                                    body,
                                    concurrency=c,
                                    requests=10**9,
                                    max_seconds=args.seconds,
                                    stream=stream,
                                )
                            )
                            used = _cpu(proc.pid) - before
                            say(
                                f"{name:<14}{'stream' if stream else 'json':<8}{c:>5}{r:>6} | "
                                f"{res.rps:>7.0f}{res.pct(50):>8.2f}{res.pct(99):>8.2f}"
                                f"{res.errors:>5} | {used * 1e6 / max(res.requests, 1):>10.0f}",
                            )
            say(f"load average: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
        finally:
            for proc, _ in procs.values():
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            sim.stop()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-aiohttp":
        serve_aiohttp(int(sys.argv[2]))
    else:
        main()
