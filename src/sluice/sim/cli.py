"""`python -m sluice.sim` / `sluice sim`: run the upstream simulator from a shell.

Flags override the built-in config (or a `--config` YAML/JSON file) for every model, so
a chaos run is one line: `python -m sluice.sim --fault-rate 0.3 --faults 429,500,hang`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import ValidationError

from sluice.sim.config import DEFAULT_PORT, SimConfig
from sluice.sim.server import run


def build_config(
    *,
    config_path: str | None = None,
    host: str | None = None,
    port: int | None = None,
    fault_rate: float | None = None,
    faults: str | None = None,
    seed: int | None = None,
    ttft_ms: float | None = None,
    tps: float | None = None,
    output_tokens: int | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    hang_s: float | None = None,
) -> SimConfig:
    """A validated `SimConfig` from an optional file plus command-line overrides."""
    data: dict[str, Any] = {}
    if config_path is not None:
        loaded = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
        if loaded is not None and not isinstance(loaded, dict):
            raise click.BadParameter("the config file must hold a mapping", param_hint="--config")
        data = dict(loaded or {})
    overrides = {
        "host": host,
        "port": port,
        "fault_rate": fault_rate,
        "faults": faults,
        "seed": seed,
        "hang_s": hang_s,
    }
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        config = SimConfig.model_validate(data)
    except ValidationError as exc:
        raise click.UsageError(f"invalid simulator settings:\n{exc}") from None
    config = config.with_latency(ttft_ms, tps, output_tokens)
    return config.with_limits(rpm_limit, tpm_limit)


@click.command("sim")
@click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False),
    help="YAML/JSON file with SimConfig fields (models, faults, ...).",
)
@click.option("--host", default=None, help="Interface to bind [127.0.0.1].")
@click.option("--port", type=int, default=None, help=f"Port to listen on [{DEFAULT_PORT}].")
@click.option("--fault-rate", type=float, default=None, help="Share of requests to fail, 0..1.")
@click.option(
    "--faults",
    default=None,
    help="Fault kinds drawn from: 429,500,502,503,529,hang,malformed,cut,refuse.",
)
@click.option("--seed", type=int, default=None, help="Seed for answers and fault draws.")
@click.option("--ttft-ms", type=float, default=None, help="Time to first token, every model.")
@click.option("--tps", type=float, default=None, help="Tokens per second (0 = instant).")
@click.option("--output-tokens", type=int, default=None, help="Default answer length.")
@click.option("--rpm-limit", type=int, default=None, help="Requests/min per model (0 = off).")
@click.option("--tpm-limit", type=int, default=None, help="Tokens/min per model (0 = off).")
@click.option("--hang-s", type=float, default=None, help="How long a `hang` fault waits.")
def sim_command(**options: Any) -> None:
    """Run the Sluice upstream SIMULATOR: fake OpenAI + Anthropic APIs, not a real model."""
    config = build_config(**options)
    try:
        run(config)
    except OSError as exc:  # the bind: a port another program holds, an unknown host
        where = f"{config.host}:{config.port}"
        raise click.ClickException(f"cannot listen on {where}: {exc.strerror or exc}") from None


def main(argv: list[str] | None = None) -> None:
    """Entry point for `python -m sluice.sim` (and for `sluice sim` to delegate to)."""
    sim_command.main(args=argv, prog_name="python -m sluice.sim", standalone_mode=True)
