"""How far above a bare Python proxy Sluice's gateway is (issue 20, the "floor").

One canned C upstream (`canned_upstream.c`), `wrk` as the load, and in one interleaved run:
- `sluice`: `sluice serve` with the built-in config (records on, semantic cache off; the
  upstream transport from `--transport`, default aiohttp),
- bare proxies from `server_granian.py` (read the body, orjson parse, POST upstream, answer
  with the body or pass the SSE bytes through; no auth, no records, no metrics):
  `aiohttp+aiohttp` (aiohttp.web, aiohttp's client), `aiohttp+pyreqwest`,
  `granian+aiohttp` and `granian+pyreqwest` (granian RSGI, 1 worker, 1 runtime thread,
  uvloop).
Each server's CPU per request is its whole process tree's user + system time over the
requests wrk completed.

    .venv/bin/pip install granian pyreqwest    # benchmark only
    .venv/bin/python benchmarks/floor.py [--rounds 3] [--seconds 6] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from sluice.bench.load import run_wrk
from sluice.bench.overhead import _body
from sluice.bench.processes import Child, free_port, start_gateway, wait_ready

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from workers_canned import record_bodies, start_canned  # noqa: E402  (this directory)


def bare(tmp: Path, upstream: str, server: str, client: str) -> Child:
    port = free_port()
    env = {
        **os.environ,
        "BENCH_UPSTREAM": upstream,
        "BENCH_CLIENT": client,
        "PYTHONPATH": str(HERE),
    }
    if server == "aiohttp":
        command = [sys.executable, str(HERE / "server_granian.py"), "--serve-aiohttp", str(port)]
    else:
        granian = shutil.which("granian", path=str(Path(sys.executable).parent)) or "granian"
        command = [granian, "--interface", "rsgi", "--port", str(port), "--workers", "1"]
        command += ["--runtime-threads", "1", "--loop", "uvloop", "--log-level", "warning"]
        command += ["--no-ws", "server_granian:rsgi_app"]
    log_path = tmp / f"{server}-{client}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=HERE)
    child = Child(f"{server}+{client}", "", process, log_path)
    child.url = f"http://127.0.0.1:{port}"
    wait_ready(child.url + "/healthz", child)
    return child


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--transport", default="aiohttp", help="the Sluice gateway's")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sluice-floor-") as tmp_name:
        tmp = Path(tmp_name)
        canned = start_canned(tmp, *record_bodies(tmp))
        servers: dict[str, Child] = {}
        try:
            servers["sluice"] = start_gateway(
                tmp / "gw",
                canned.url,
                env={
                    "SLUICE_RECORDS": "true",
                    "SLUICE_RECORDS_URL": f"sqlite:///{tmp / 'records.db'}",
                    "SLUICE_SEMANTIC_CACHE": "false",
                    "SLUICE_UPSTREAM_TRANSPORT": args.transport,
                },
            )
            upstream = canned.url
            for server in ("aiohttp", "granian"):
                for client in ("aiohttp", "pyreqwest"):
                    servers[f"{server}+{client}"] = bare(tmp, upstream, server, client)
            names = list(servers)
            table: dict[tuple[str, str], list[float]] = {}
            print(  # noqa: T201
                f"canned upstream, wrk c={args.concurrency}, {args.seconds:.0f} s per run\n"
                f"{'mode':<7}{'round':>6} {'server':<18}| {'rps':>6} | {'CPU µs/req':>10}"
            )
            for mode in ("json", "stream"):
                body = _body(mode == "stream")
                for child in servers.values():  # warm-up
                    run_wrk(child.url + "/v1/chat/completions", body, concurrency=8, seconds=1)
                for r in range(args.rounds):
                    shift = r % len(names)
                    for name in names[shift:] + names[:shift]:
                        child = servers[name]
                        before = child.tree_cpu_seconds()
                        res = run_wrk(
                            child.url + "/v1/chat/completions",
                            body,
                            concurrency=args.concurrency,
                            seconds=args.seconds,
                        )
                        us = (child.tree_cpu_seconds() - before) * 1e6 / max(res.requests, 1)
                        table.setdefault((mode, name), []).append(us)
                        errors = f"  ({res.errors} errors)" if res.errors else ""
                        row = f"{mode:<7}{r + 1:>6} {name:<18}| {res.rps:>6.0f} | {us:>10.0f}"
                        print(row + errors, flush=True)  # noqa: T201
            print("\nmedian CPU µs/req:")  # noqa: T201
            for (mode, name), values in table.items():
                print(f"{mode:<7} {name:<18} {statistics.median(values):>6.0f}")  # noqa: T201
            print(f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")  # noqa: T201
        finally:
            for child in servers.values():
                child.stop()
            canned.stop()


if __name__ == "__main__":
    main()
