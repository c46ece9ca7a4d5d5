"""`sluice bench overhead`: what the gateway adds on top of a zero-latency upstream.

The simulator and the gateway run as separate processes (one each), the load generator in
this one. The same closed-loop workload runs straight at the simulator and through the
gateway, non-streaming and streaming, at each concurrency.
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from sluice.bench.load import LoadResult, run_load, run_wrk
from sluice.bench.processes import Child, sim_and_gateway, start_gateway, start_sim

PROMPT = "Summarize the benefits of connection pooling for HTTP clients in two sentences."


@dataclass
class Row:
    stream: bool
    concurrency: int
    direct: LoadResult
    gateway: LoadResult
    gateway_cpu_s: float  # CPU the gateway process used during its run (all threads)

    @property
    def cpu_us_per_request(self) -> float:
        """Steadier than rps on shared cores: when the gateway's core is saturated,
        throughput is about 1e6 / this."""
        requests = self.gateway.requests
        return self.gateway_cpu_s * 1e6 / requests if requests else float("nan")


def _body(stream: bool) -> bytes:
    return orjson.dumps(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 64,
            "stream": stream,
        }
    )


async def _one(
    url: str, body: bytes, c: int, requests: int, seconds: float, stream: bool, use_wrk: bool
) -> LoadResult:
    if use_wrk:
        return await asyncio.to_thread(run_wrk, url, body, concurrency=c, seconds=seconds)
    return await run_load(
        url, body, concurrency=c, requests=requests, max_seconds=seconds, stream=stream
    )


async def _measure(
    sim_url: str,
    gw_url: str,
    concurrencies: list[int],
    requests: int,
    seconds: float,
    modes: list[bool],
    use_wrk: bool,
    gateway_cpu: Callable[[], float],
) -> list[Row]:
    rows = []
    path = "/v1/chat/completions"
    for stream in modes:
        body = _body(stream)
        for c in concurrencies:
            direct = await _one(sim_url + path, body, c, requests, seconds, stream, use_wrk)
            cpu_before = gateway_cpu()
            gateway = await _one(gw_url + path, body, c, requests, seconds, stream, use_wrk)
            rows.append(Row(stream, c, direct, gateway, gateway_cpu() - cpu_before))
    return rows


def _format(rows: list[Row], idle_rss: float, loaded_rss: float) -> str:
    head = (
        f"{'mode':<10}{'conc':>5} | {'direct rps':>10}{'p50 ms':>8}{'p99 ms':>8} | "
        f"{'gateway rps':>11}{'p50 ms':>8}{'p99 ms':>8} | {'added p50':>9}{'added p99':>10} | "
        f"{'gw CPU µs/req':>13}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{'stream' if r.stream else 'json':<10}{r.concurrency:>5} | "
            f"{r.direct.rps:>10.0f}{r.direct.pct(50):>8.2f}{r.direct.pct(99):>8.2f} | "
            f"{r.gateway.rps:>11.0f}{r.gateway.pct(50):>8.2f}{r.gateway.pct(99):>8.2f} | "
            f"{r.gateway.pct(50) - r.direct.pct(50):>9.2f}"
            f"{r.gateway.pct(99) - r.direct.pct(99):>10.2f} | "
            f"{r.cpu_us_per_request:>13.0f}"
        )
        errors = r.direct.errors + r.gateway.errors
        if errors:
            lines.append(f"  !! {errors} failed requests")
    lines.append(f"gateway RSS: idle {idle_rss:.1f} MiB, after load {loaded_rss:.1f} MiB")
    return "\n".join(lines)


def run(
    concurrencies: list[int],
    requests: int,
    seconds: float,
    modes: list[bool],
    loadgen: str,
    records: bool = True,
    config: str | None = None,
    transport: str | None = None,
) -> str:
    use_wrk = loadgen == "wrk" or (loadgen == "auto" and shutil.which("wrk") is not None)
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        env = {
            "SLUICE_RECORDS": "true" if records else "false",
            "SLUICE_RECORDS_URL": f"sqlite:///{Path(tmp) / 'records.db'}",
        }
        if transport:  # the built-in config's providers read it (default: aiohttp)
            env["SLUICE_UPSTREAM_TRANSPORT"] = transport
        with sim_and_gateway(Path(tmp), env=env, config=config) as (sim, gateway):
            idle_rss = gateway.rss_mb()
            rows = asyncio.run(
                _measure(
                    sim.url,
                    gateway.url,
                    concurrencies,
                    requests,
                    seconds,
                    modes,
                    use_wrk,
                    gateway.cpu_seconds,
                )
            )
            rss = gateway.rss_mb()
    loader = "wrk (C, 1 thread)" if use_wrk else "Python aiohttp (same 2 cores)"
    state = "on (SQLite, previews)" if records else "off"
    header = (
        f"load generator: {loader}; simulator and gateway: one process each; records {state}; "
        f"upstream transport: {transport or 'the config default'}\n"
    )
    return header + _format(rows, idle_rss, rss)


# ---- `sluice bench overhead --workers 1,2`: throughput per worker count ----------------

ROOT = Path(__file__).parents[3]


@dataclass
class WorkersRow:
    round: int
    workers: int
    stream: bool
    result: LoadResult
    cpu_s: float  # CPU of the gateway's whole process tree during the run
    other_s: float = float("nan")  # CPU of the upstream and the load generator meanwhile

    @property
    def other_cores(self) -> float:
        """Cores the upstream and the load generator took meanwhile: with the gateway's,
        about the machine's cores means the run was CPU-bound."""
        elapsed = self.result.elapsed_s
        return self.other_s / elapsed if elapsed else float("nan")

    @property
    def cpu_us_per_request(self) -> float:
        n = self.result.requests
        return self.cpu_s * 1e6 / n if n else float("nan")

    @property
    def cores(self) -> float:
        """Cores the gateway kept busy: well below its worker count means the gateway was
        not the bottleneck (the load generator or the simulator was), so rps cannot scale."""
        elapsed = self.result.elapsed_s
        return self.cpu_s / elapsed if elapsed else float("nan")


def _workers_config(tmp: Path) -> Path:
    """The built-in config, minus the one setting `--workers N` refuses with a memory cache
    (idempotency); the same file for every worker count, so only the count differs."""
    import yaml

    data = yaml.safe_load((ROOT / "examples" / "sim.yaml").read_text())
    data.setdefault("cache", {})["idempotency"] = {"enabled": False}
    # The records spool inside the run's temp dir (one per gateway), not the working directory.
    data["observability"]["records"]["spool_dir"] = "${SLUICE_BENCH_SPOOL}"
    path = tmp / "workers.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def _measure_workers(
    gateways: dict[int, Child],
    rounds: int,
    concurrency: int,
    seconds: float,
    modes: list[bool],
    use_wrk: bool,
    upstream_cpu: Callable[[], float],
) -> list[WorkersRow]:
    def others() -> float:  # the upstream, and the load generator (wrk: a child; else us)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = kids.ru_utime + kids.ru_stime if use_wrk else time.process_time()
        return upstream_cpu() + own

    rows = []
    path = "/v1/chat/completions"
    for stream in modes:
        body = _body(stream)
        for gw in gateways.values():  # warm every worker's pools and caches
            await _one(gw.url + path, body, concurrency, 400, 2, stream, use_wrk)
        for r in range(1, rounds + 1):
            for count, gw in gateways.items():  # interleaved: each round runs every count
                cpu_before, others_before = gw.tree_cpu_seconds(), others()
                res = await _one(gw.url + path, body, concurrency, 10**9, seconds, stream, use_wrk)
                cpu, other = gw.tree_cpu_seconds() - cpu_before, others() - others_before
                rows.append(WorkersRow(r, count, stream, res, cpu, other))
    return rows


def _format_workers(rows: list[WorkersRow], loadavg: tuple[float, float]) -> str:
    head = (
        f"{'mode':<7}{'round':>6}{'workers':>8} | {'rps':>7}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'errors':>7} | {'gw CPU µs/req':>13}{'gw cores':>9}{'others':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        res = r.result
        lines.append(
            f"{'stream' if r.stream else 'json':<7}{r.round:>6}{r.workers:>8} | {res.rps:>7.0f}"
            f"{res.pct(50):>8.2f}{res.pct(99):>8.2f}{res.errors:>7} | "
            f"{r.cpu_us_per_request:>13.0f}{r.cores:>9.2f}{r.other_cores:>7.2f}"
        )
    lines.append("")
    counts = sorted({r.workers for r in rows})
    base = counts[0]
    for stream in sorted({r.stream for r in rows}):
        mode = "stream" if stream else "json"
        by = {
            c: sorted(r.result.rps for r in rows if r.stream == stream and r.workers == c)
            for c in counts
        }
        med = {c: v[len(v) // 2] for c, v in by.items() if v}
        parts = [f"{c} worker{'s' if c > 1 else ''} {med[c]:.0f} rps" for c in counts]
        ratios = [f"{c}/{base}: {med[c] / med[base]:.2f}x" for c in counts if c != base]
        lines.append(f"{mode}: median " + ", ".join(parts) + ("; " + ", ".join(ratios)))
    lines.append(
        f"load average at start / end (1 min): {loadavg[0]:.2f} / {loadavg[1]:.2f}; "
        f"cores: {os.cpu_count()}"
    )
    return "\n".join(lines)


def run_workers(
    counts: list[int],
    rounds: int,
    concurrency: int,
    seconds: float,
    modes: list[bool],
    loadgen: str,
    records: bool = True,
    upstream: Child | None = None,
) -> str:
    """One simulator (or the given `upstream`, e.g. `benchmarks/workers_canned.py`'s canned
    one), one gateway per worker count (all started up front, idle between their runs), the
    same load on each in turn, `rounds` times. `others`: the cores the upstream and the load
    generator took."""
    use_wrk = loadgen == "wrk" or (loadgen == "auto" and shutil.which("wrk") is not None)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp_name:
        tmp = Path(tmp_name)
        config = str(_workers_config(tmp))
        sim = upstream or start_sim(tmp)
        gateways: dict[int, Child] = {}
        try:
            for count in counts:
                env = {
                    "SLUICE_RECORDS": "true" if records else "false",
                    "SLUICE_RECORDS_URL": f"sqlite:///{tmp / f'records-{count}.db'}",
                    "SLUICE_SEMANTIC_CACHE": "false",
                    "SLUICE_BENCH_SPOOL": str(tmp / f"spool-{count}"),
                }
                gateways[count] = start_gateway(
                    tmp / f"gw{count}", sim.url, config=config, env=env, workers=count
                )
            time.sleep(2.0)  # every worker of each gateway listening
            rows = asyncio.run(
                _measure_workers(
                    gateways, rounds, concurrency, seconds, modes, use_wrk, sim.tree_cpu_seconds
                )
            )
        finally:
            for gw in gateways.values():
                gw.stop()
            if upstream is None:
                sim.stop()
    loader = "wrk (C, 1 thread)" if use_wrk else "Python aiohttp, in this process"
    header = (
        f"load generator: {loader}, concurrency {concurrency}, {seconds:.0f} s per run; "
        f"records {'on' if records else 'off'}; semantic cache off; upstream: "
        f"{'the simulator, one process' if upstream is None else upstream.name}\n"
    )
    return header + _format_workers(rows, (load_start, os.getloadavg()[0]))
