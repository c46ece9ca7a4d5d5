"""Python function calls per proxied request in the gateway's event-loop thread: a
load-independent measure of the hot path (issue 20). The gateway runs under cProfile against
the canned upstream (`canned_upstream.c`), `wrk` sends the load for a fixed time, and the
profile's call count is divided by the requests wrk completed. Start-up and shutdown are in
the count, so a run measures a few thousand requests and compares runs of the same length.
The records writer thread is not profiled (cProfile sees one thread): `records_write.py`
measures it.

    .venv/bin/python benchmarks/profile_gateway.py [--mode json|stream] [--seconds 6]
        [--top 25] [--src OTHER/src]   # OTHER/src: profile another checkout's gateway

Needs gcc and wrk.
"""

from __future__ import annotations

import argparse
import os
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from sluice.bench.load import run_wrk
from sluice.bench.overhead import _body
from sluice.bench.processes import Child, free_port, wait_ready

sys.path.insert(0, str(Path(__file__).parent))
from workers_canned import record_bodies, start_canned

Row = tuple[int, float]  # calls, own seconds


def profile_run(args: argparse.Namespace, seconds: float) -> tuple[int, dict[str, Row]]:
    """(requests served, {function: (calls, own seconds)}) of one gateway run under load."""
    with tempfile.TemporaryDirectory(prefix="sluice-prof-") as tmp_name:
        tmp = Path(tmp_name)
        canned = start_canned(tmp, *record_bodies(tmp))
        prof = tmp / "gateway.prof"
        port = free_port()
        env = {
            **os.environ,
            "SLUICE_SIM_URL": canned.url,
            "SLUICE_RECORDS": "true" if args.records == "on" else "false",
            "SLUICE_RECORDS_URL": f"sqlite:///{tmp / 'records.db'}",
            "SLUICE_SEMANTIC_CACHE": "false",
            "SLUICE_UPSTREAM_TRANSPORT": args.transport,
        }
        if args.src:
            env["PYTHONPATH"] = args.src
        command = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "sluice.cli"]
        command += ["serve", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--log-level", "warning"]
        log_path = tmp / "gateway.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        gateway = Child("gateway", "", process, log_path)
        gateway.url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(gateway.url + "/readyz", gateway)
            result = run_wrk(
                gateway.url + "/v1/chat/completions",
                _body(args.mode == "stream"),
                concurrency=args.concurrency,
                seconds=seconds,
            )
        finally:
            gateway.stop(timeout=30)
            canned.stop()
        raw = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
        rows: dict[str, Row] = {}
        for (file, line, name), (_, calls, own, _, _) in raw.items():
            rows[f"{file.split('site-packages/')[-1].split('/src/')[-1]}:{line}({name})"] = (
                calls,
                own,
            )
        return result.requests, rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["json", "stream"], default="json")
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--src", help="profile the gateway of another checkout's src/")
    parser.add_argument("--transport", default="aiohttp")
    parser.add_argument("--records", choices=["on", "off"], default="on")
    args = parser.parse_args()
    # Two runs, 1 s and `seconds` long: the difference leaves out start-up and shutdown.
    short_n, short = profile_run(args, 1)
    long_n, long = profile_run(args, args.seconds)
    n = max(long_n - short_n, 1)
    marginal = {
        key: (calls - short.get(key, (0, 0.0))[0], own - short.get(key, (0, 0.0))[1])
        for key, (calls, own) in long.items()
    }
    total = sum(calls for calls, _ in marginal.values())
    print(  # noqa: T201
        f"{args.mode}: {long_n} - {short_n} requests; Python calls in the loop thread per "
        f"request: {total / n:.0f}\n{'calls/req':>9} {'own µs/req':>10}  function"
    )
    ranked = sorted(marginal.items(), key=lambda kv: kv[1][1], reverse=True)[: args.top]
    for key, (calls, own) in ranked:
        print(f"{calls / n:9.2f} {own / n * 1e6:10.2f}  {key}")  # noqa: T201


if __name__ == "__main__":
    main()
