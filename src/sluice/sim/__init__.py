"""Upstream simulator: a fake OpenAI + Anthropic API server for demos, tests and benchmarks.

Every answer starts with "[simulated]" and every response carries
`x-sluice-simulator: true`; nothing here talks to a real model.

In-process (tests)::

    async with running(SimConfig(port=0)) as sim:
        AsyncOpenAI(base_url=sim.openai_url, api_key="x")
        AsyncAnthropic(base_url=sim.url, api_key="x")

From a shell: `python -m sluice.sim --port 8089 --fault-rate 0.1 --faults 429,500`.
"""

from sluice.sim.cli import build_config, main, sim_command
from sluice.sim.config import SimConfig, SimModel, default_config
from sluice.sim.server import STATE, RunningSim, create_app, run, running, start

__all__ = [
    "STATE",
    "RunningSim",
    "SimConfig",
    "SimModel",
    "build_config",
    "create_app",
    "default_config",
    "main",
    "run",
    "running",
    "sim_command",
    "start",
]
