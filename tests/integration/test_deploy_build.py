"""The Dockerfile's build steps, run outside a container (no Docker engine here): wheels built
by deploy/scripts/build-wheels.sh, installed offline by install-runtime.sh into a fresh venv,
and the installed gateway served, called, and scraped for the dashboard's metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from sluice.bench.processes import Child, free_port, start_sim, wait_ready
from tests.unit.test_deploy_manifests import DEPLOY, ROOT, dashboard_metrics

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def base_python() -> str:
    """The interpreter the venv was made from: what the image's python is to its venv."""
    return str(Path(sys.base_prefix) / "bin" / "python3")


def test_image_build_steps_produce_a_working_gateway(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": base_python()}
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    for step in (
        [str(DEPLOY / "scripts" / "build-wheels.sh"), str(ROOT), str(wheels), "base"],
        [str(DEPLOY / "scripts" / "install-runtime.sh"), str(wheels), str(venv), "base"],
    ):
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    sim = start_sim(tmp_path)
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "governance": {"auth": {"enabled": False}},
                "observability": {"records": {"store_url": f"sqlite:///{tmp_path / 'r.db'}"}},
                "providers": {"sim": {"kind": "openai", "api_base": sim.url + "/v1"}},
                "deployments": [{"id": "sim-mini", "provider": "sim", "model": "gpt-4o-mini"}],
            }
        )
    )
    log = (tmp_path / "gateway.log").open("wb")
    proc = subprocess.Popen(
        [str(venv / "bin" / "sluice"), "serve", "--config", str(config), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/readyz", Child("gateway", url, proc, tmp_path / "gateway.log"), 60)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        req = urllib.request.Request(
            url + "/v1/chat/completions",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
        with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
            exported = resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(30)
        sim.stop()
    missing = {m for m in dashboard_metrics() if m not in exported}
    assert not missing, f"the Grafana dashboard queries metrics the gateway lacks: {missing}"
