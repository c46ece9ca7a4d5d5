"""Machine instructions per proxied request of the whole gateway process (every thread: the
event loop, the records writer, a transport's own runtime thread), counted by valgrind's
callgrind: unlike CPU time, the count does not move with the machine's load (issue 20).

The gateway (`sluice serve`, built-in config, records on, semantic cache off) starts under
callgrind with instrumentation off; after a warm-up, counting is switched on for `--calls`
requests (closed loop at `--concurrency`, Python load generator in this process: its cost is
not counted) and the total is divided by the requests. Upstream: the canned C server. Each
`--variant NAME:VAR=VALUE[,...]` is a gateway with those environment variables (e.g.
SLUICE_UPSTREAM_TRANSPORT), `--src` runs another checkout's gateway.

    .venv/bin/python benchmarks/callgrind_gateway.py \\
        --variant aiohttp:SLUICE_UPSTREAM_TRANSPORT=aiohttp \\
        --variant lean:SLUICE_UPSTREAM_TRANSPORT=lean [--calls 400] [--mode json|stream]

Needs valgrind and gcc. Slow: the gateway runs ~50x slower while counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sluice.bench.load import run_load
from sluice.bench.overhead import _body
from sluice.bench.processes import Child, free_port, wait_ready

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from workers_canned import record_bodies, start_canned  # noqa: E402  (this directory)


def count(
    tmp: Path, name: str, extra: dict[str, str], upstream: str, args: argparse.Namespace
) -> float:
    """Instructions per request of one gateway."""
    out = tmp / f"{name}.callgrind"
    port = free_port()
    env = {
        **os.environ,
        "SLUICE_SIM_URL": upstream,
        "SLUICE_RECORDS": "true",
        "SLUICE_RECORDS_URL": f"sqlite:///{tmp / f'{name}.db'}",
        "SLUICE_SEMANTIC_CACHE": "false",
        "PYTHONMALLOC": "malloc",  # valgrind-friendly; the same for every variant
        **extra,
    }
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    command += [sys.executable, "-m", "sluice.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning"]
    log_path = tmp / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    gateway = Child(name, "", process, log_path)
    gateway.url = f"http://127.0.0.1:{port}"
    url = gateway.url + "/v1/chat/completions"
    body = _body(args.mode == "stream")
    stream = args.mode == "stream"
    try:
        wait_ready(gateway.url + "/readyz", gateway, timeout=300)
        asyncio.run(
            run_load(
                url,
                body,
                concurrency=args.concurrency,
                requests=200,
                max_seconds=600,
                stream=stream,
                warmup=0,
            )
        )
        subprocess.run(
            ["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True
        )
        res = asyncio.run(
            run_load(
                url,
                body,
                concurrency=args.concurrency,
                requests=args.calls,
                max_seconds=1200,
                stream=stream,
                warmup=0,
            )
        )
        time.sleep(1.5)  # the records writer's last batch of these calls
        subprocess.run(
            ["callgrind_control", "-i", "off", str(process.pid)], check=True, capture_output=True
        )
    finally:
        gateway.stop(timeout=120)
    if os.environ.get("CALLGRIND_KEEP"):
        import shutil

        for path in tmp.glob(f"{name}.*"):
            shutil.copy(path, os.environ["CALLGRIND_KEEP"])
    text = out.read_text(errors="replace")
    match = re.search(r"^totals: (\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no callgrind totals in {out}")
    if res.errors:
        print(f"{name}: {res.errors} errors")  # noqa: T201
    return int(match.group(1)) / max(res.requests, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--src", action="append", default=[], help="NAME:PATH/src")
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--mode", choices=["json", "stream"], default="json")
    args = parser.parse_args()
    variants: list[tuple[str, dict[str, str]]] = []
    for text in args.variant:
        name, _, assignments = text.partition(":")
        variants.append((name, dict(p.split("=", 1) for p in assignments.split(",") if p)))
    for text in args.src:
        name, _, path = text.partition(":")
        variants.append((name, {"PYTHONPATH": str(Path(path).resolve())}))
    with tempfile.TemporaryDirectory(prefix="sluice-callgrind-") as tmp_name:
        tmp = Path(tmp_name)
        canned = start_canned(tmp, *record_bodies(tmp))
        try:
            for name, extra in variants:
                per = count(tmp, name, extra, canned.url, args)
                print(  # noqa: T201
                    f"{args.mode:<7} {name:<12} {per / 1e6:8.3f} M instructions per request",
                    flush=True,
                )
        finally:
            canned.stop()


if __name__ == "__main__":
    main()
