"""Workers 1 vs N in the gateway-CPU-bound case (issue 20): a canned upstream, `wrk` load.

`sluice bench overhead --workers 1,2` puts the simulator (Python, ~100-150 µs of CPU per
request) on the same cores as the gateway. Here the upstream is `canned_upstream.c` (C, one
thread, epoll) answering every call with the simulator's own recorded JSON or SSE body, and
the load comes from `wrk` (C, one thread), so nearly all the machine's CPU is the gateway's.
The table's `gw cores` and `others` columns say where the cores went (others = the canned
upstream + wrk).

    .venv/bin/python benchmarks/workers_canned.py [--workers 1,2] [--rounds 2] [--seconds 8]

Needs gcc and wrk (Debian: `apt-get install gcc wrk`). No CPU pinning: on 2 cores there is
no core to spare for the upstream and wrk, so every process floats (see BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from sluice.bench.overhead import _body, run_workers
from sluice.bench.processes import Child, free_port, start_sim, wait_ready

HERE = Path(__file__).parent


def record_bodies(tmp: Path) -> tuple[Path, Path]:
    """The simulator's answers to the benchmark's JSON and streamed requests, as files."""
    sim = start_sim(tmp)
    try:
        paths = []
        for stream in (False, True):
            req = urllib.request.Request(
                sim.url + "/v1/chat/completions",
                data=_body(stream),
                headers={"content-type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                body = resp.read()
            path = tmp / ("answer.sse" if stream else "answer.json")
            path.write_bytes(body)
            paths.append(path)
        return paths[0], paths[1]
    finally:
        sim.stop()


def start_canned(tmp: Path, json_body: Path, sse_body: Path) -> Child:
    binary = tmp / "canned"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(HERE / "canned_upstream.c")], check=True)
    port = free_port()
    log_path = tmp / "canned.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary), str(port), str(json_body), str(sse_body)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    child = Child("canned upstream (C, benchmarks/canned_upstream.c)", "", process, log_path)
    child.url = f"http://127.0.0.1:{port}"
    wait_ready(child.url + "/healthz", child)
    return child


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--mode", choices=["json", "stream", "both"], default="both")
    parser.add_argument("--records", choices=["on", "off"], default="on")
    args = parser.parse_args()
    if shutil.which("wrk") is None or shutil.which("gcc") is None:
        sys.exit("needs wrk and gcc on PATH")
    modes = {"json": [False], "stream": [True], "both": [False, True]}[args.mode]
    with tempfile.TemporaryDirectory(prefix="sluice-canned-") as tmp_name:
        tmp = Path(tmp_name)
        canned = start_canned(tmp, *record_bodies(tmp))
        try:
            sys.stdout.write(
                run_workers(
                    [int(c) for c in args.workers.split(",")],
                    args.rounds,
                    args.concurrency,
                    args.seconds,
                    modes,
                    "wrk",
                    records=args.records == "on",
                    upstream=canned,
                )
                + "\n"
            )
        finally:
            canned.stop()


if __name__ == "__main__":
    main()
