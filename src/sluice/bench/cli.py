"""`sluice bench …`: the benchmarks' command line (each runs a module of sluice.bench).

Results belong in BENCHMARKS.md, with the command that made them.
"""

from __future__ import annotations

import os

import click

from sluice.config import ConfigError, SluiceConfig, load_config


def _config(path: str) -> SluiceConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _one_blas_thread() -> None:
    """One core means one BLAS thread too (only effective before numpy is first imported)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


@click.group()
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
    type=click.Choice(["aiohttp", "lean", "pyreqwest"]),
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
        click.echo(run(_config(config_path), dataset, route, as_json=as_json))
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
        "tests/data/injection/handwritten-4.jsonl",
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
    help="An earlier linear classifier (.npz): score every set with it too (before/after in "
    "one run), e.g. src/sluice/guardrails/injection/classifier.npz (round 3, threshold 0.97) "
    "or tests/data/injection/classifier-round1.npz (0.9).",
)
@click.option("--baseline-threshold", type=float, default=0.97, show_default=True)
@click.option(
    "--candidate",
    "candidates",
    multiple=True,
    type=(click.Path(dir_okay=False, exists=True), click.FloatRange(0.0, 1.0, min_open=True)),
    help="Another fine-tuned model (.onnx) and its threshold, scored on every set in the same "
    "run (repeatable), e.g. --candidate build/injection-ft/model.onnx 0.995.",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["sequence", "linear", "combined"]),
    help="Another classifier kind at its default threshold, scored and timed on every set in "
    "the same run (repeatable), e.g. --kind linear --kind combined.",
)
def injection_bench(
    data: str,
    external: tuple[str, ...],
    traffic: tuple[str, ...],
    threshold: float | None,
    repeat: int,
    baseline_weights: str | None,
    baseline_threshold: float,
    candidates: tuple[tuple[str, float], ...],
    kinds: tuple[str, ...],
) -> None:
    """Prompt-injection precision, recall, F1, FPR per layer, and per-call latency."""
    _one_blas_thread()
    from sluice.bench.injection import run
    from sluice.embed import EmbedderUnavailableError

    try:
        baseline = (baseline_weights, baseline_threshold) if baseline_weights else None
        click.echo(
            run(
                data,
                list(external),
                list(traffic),
                threshold,
                repeat,
                baseline,
                [(str(m), float(t)) for m, t in candidates],
                list(kinds),
            )
        )
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
    _one_blas_thread()
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
    _one_blas_thread()
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
