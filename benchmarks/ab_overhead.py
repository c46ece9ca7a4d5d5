"""Before/after gateway CPU per request in ONE interleaved run (issue 20).

On a shared machine two separate `sluice bench overhead` runs minutes apart differ by more
than most single changes do. This starts one simulator and two gateways with the same config —
"before" importing Sluice from another checkout's `src` (PYTHONPATH wins over the editable
install), "after" from this one — and alternates the same closed-loop load between them,
reporting each run's gateway CPU per request (user + system, all threads) and rps.

    git -C . archive <commit> src | tar -x -C /tmp/before      # the "before" tree
    .venv/bin/python benchmarks/ab_overhead.py /tmp/before/src [--rounds 3] [--seconds 8]
        [--upstream canned --loadgen wrk]   # the gateway's own CPU with little else running

Or N gateways from this checkout differing only in their environment, e.g. the upstream
transports (the built-in config reads SLUICE_UPSTREAM_TRANSPORT):

    .venv/bin/python benchmarks/ab_overhead.py --upstream canned --loadgen wrk \
        --variant aiohttp:SLUICE_UPSTREAM_TRANSPORT=aiohttp \
        --variant pyreqwest:SLUICE_UPSTREAM_TRANSPORT=pyreqwest
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

from sluice.bench.load import run_load, run_wrk
from sluice.bench.overhead import _body
from sluice.bench.processes import start_gateway, start_sim


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("before_src", nargs="?", help="the src/ directory of the 'before' checkout")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE[,VAR=VALUE]",
        help="instead of before/after: a gateway from this checkout with these variables",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--mode", choices=["json", "stream", "both"], default="both")
    parser.add_argument("--records", choices=["on", "off"], default="on")
    parser.add_argument(
        "--upstream",
        choices=["sim", "canned"],
        default="sim",
        help="canned: the C server of workers_canned.py with the simulator's recorded bodies",
    )
    parser.add_argument("--loadgen", choices=["python", "wrk"], default="python")
    args = parser.parse_args()
    if bool(args.before_src) == bool(args.variant):
        parser.error("give either the 'before' src directory or --variant (two or more)")
    variants: list[tuple[str, dict[str, str]]] = [
        ("before", {"PYTHONPATH": args.before_src}),
        ("after", {}),
    ]
    if args.variant:
        variants = [_variant(text) for text in args.variant]
    modes = {"json": [False], "stream": [True], "both": [False, True]}[args.mode]
    with tempfile.TemporaryDirectory(prefix="sluice-ab-") as tmp_name:
        tmp = Path(tmp_name)
        if args.upstream == "canned":
            from workers_canned import record_bodies, start_canned  # this directory

            sim = start_canned(tmp, *record_bodies(tmp))
        else:
            sim = start_sim(tmp)
        gateways = {}
        try:
            for name, extra in variants:
                env = {
                    "SLUICE_RECORDS": "true" if args.records == "on" else "false",
                    "SLUICE_RECORDS_URL": f"sqlite:///{tmp / f'{name}.db'}",
                    "SLUICE_SEMANTIC_CACHE": "false",
                    **extra,
                }
                gateways[name] = start_gateway(tmp / name, sim.url, env=env)
            table: dict[tuple[bool, str], list[tuple[float, float]]] = {}
            out = sys.stdout
            out.write(
                f"concurrency {args.concurrency}, {args.seconds:.0f} s per run, records "
                f"{args.records}, semantic cache off, upstream {args.upstream}, load generator "
                f"{args.loadgen}\n"
                f"{'mode':<7}{'round':>6} {'gateway':<10}| {'rps':>6} | {'gw CPU µs/req':>13}\n"
            )
            for stream in modes:
                body = _body(stream)
                for gw in gateways.values():  # warm-up
                    asyncio.run(
                        run_load(
                            gw.url + "/v1/chat/completions",
                            body,
                            concurrency=args.concurrency,
                            requests=300,
                            max_seconds=3,
                            stream=stream,
                        )
                    )
                for r in range(1, args.rounds + 1):
                    order = list(gateways.items())
                    shift = (r - 1) % len(order)  # rotate who goes first
                    order = order[shift:] + order[:shift]
                    for name, gw in order:
                        before = gw.cpu_seconds()
                        url = gw.url + "/v1/chat/completions"
                        if args.loadgen == "wrk":
                            res = run_wrk(
                                url, body, concurrency=args.concurrency, seconds=args.seconds
                            )
                        else:
                            res = asyncio.run(
                                run_load(
                                    url,
                                    body,
                                    concurrency=args.concurrency,
                                    requests=10**9,
                                    max_seconds=args.seconds,
                                    stream=stream,
                                )
                            )
                        cpu = (gw.cpu_seconds() - before) * 1e6 / max(res.requests, 1)
                        table.setdefault((stream, name), []).append((res.rps, cpu))
                        out.write(
                            f"{'stream' if stream else 'json':<7}{r:>6} {name:<10}| "
                            f"{res.rps:>6.0f} | {cpu:>13.0f}"
                            + (f"  ({res.errors} errors)" if res.errors else "")
                            + "\n"
                        )
                        out.flush()
            out.write("\nmedians:\n")
            for (stream, name), runs in table.items():
                out.write(
                    f"{'stream' if stream else 'json':<7} {name:<10} "
                    f"rps {statistics.median(r for r, _ in runs):>6.0f}  "
                    f"gw CPU µs/req {statistics.median(c for _, c in runs):>6.0f}\n"
                )
            out.write(f"load average {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)\n")
        finally:
            for gw in gateways.values():
                gw.stop()
            sim.stop()


def _variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, assignments = text.partition(":")
    env = dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
    return name, env


if __name__ == "__main__":
    main()
