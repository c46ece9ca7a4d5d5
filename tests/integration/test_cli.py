"""The `sluice` command as a user runs it."""

from __future__ import annotations

import os
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


def test_serve_with_an_unset_webhook_secret_is_one_error_line(tmp_path: Path) -> None:
    config = tmp_path / "alerts.yaml"
    config.write_text(
        "governance:\n  auth:\n    enabled: false\n"
        "observability:\n  alerts:\n    enabled: true\n    webhooks:\n"
        "      - url: http://127.0.0.1:9/hook\n        secret_env: SLUICE_TEST_UNSET_SECRET\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "sluice.cli", "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "SLUICE_TEST_UNSET_SECRET"},
    )
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "SLUICE_TEST_UNSET_SECRET is not set" in errors[0]
