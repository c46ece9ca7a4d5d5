"""The `sluice` command as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sluice.bench.processes import start_gateway, start_sim

pytestmark = pytest.mark.integration


def test_serve_without_config_says_it_uses_the_builtin_simulator_config(tmp_path: Path) -> None:
    sim = start_sim(tmp_path)
    try:
        gateway = start_gateway(tmp_path, sim.url)
        gateway.stop()
        log = gateway.log_path.read_text()
        assert "built-in default" in log
        assert "simulator" in log
        assert "models: " in log and "gpt-4o-mini" in log
    finally:
        sim.stop()


def test_serve_with_a_bad_config_names_the_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: not-a-port\n")
    out = subprocess.run(
        [sys.executable, "-m", "sluice.cli", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "server.port (line 2)" in out.stderr
    assert "Traceback" not in out.stderr
