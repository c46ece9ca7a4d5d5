"""The container and orchestration files, checked without a Docker engine or a cluster:
Kubernetes manifests against the API's schemas (kubernetes-validate, offline), the compose file
and the Dockerfile structurally, and every Sluice config they carry through Sluice's loader."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sluice.config import SluiceConfig, parse_config
from sluice.workers import per_worker_problems

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "compose"
K8S_VERSION = "1.37.0"


def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((K8S / name).read_text()):
            docs.append((name, doc))
    return docs


def by_kind(kind: str) -> dict[str, Any]:
    return next(doc for _, doc in k8s_docs() if doc["kind"] == kind)


def fake_env(text: str) -> dict[str, str]:
    """A value for every ${VAR} a config names, as a deployment would set them."""
    names = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    env = {n: "redis://redis:6379/0" for n in names if "REDIS" in n}
    env |= {n: "postgresql+psycopg://u:p@db:5432/s" for n in names if "DATABASE" in n}
    return {n: env.get(n, "x") for n in names}


@pytest.mark.parametrize(("name", "doc"), k8s_docs(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_manifest_is_valid_against_the_kubernetes_schema(name: str, doc: Any) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_manifest_file_is_in_the_kustomization() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def configmap_config() -> SluiceConfig:
    text = by_kind("ConfigMap")["data"]["config.yaml"]
    return parse_config(text, "deploy/k8s/configmap.yaml", fake_env(text))


def test_deployment_probes_grace_and_security_match_the_gateway() -> None:
    spec = by_kind("Deployment")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = configmap_config().server.drain_timeout_s
    # SIGTERM comes after preStop; the drain must fit in what is left of the grace period.
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + drain + 5
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/sluice", "/tmp"} <= mounts
    secret_keys = set(by_kind("Secret")["stringData"])
    config_text = by_kind("ConfigMap")["data"]["config.yaml"]
    assert set(re.findall(r"\$\{([A-Z_]+)", config_text)) <= secret_keys
    for key in ("SLUICE_KEY_PEPPER", "SLUICE_ADMIN_KEY", "OPENAI_API_KEY"):
        assert key in secret_keys


def test_replica_config_shares_every_state_and_autoscaling_targets_it() -> None:
    config = configmap_config()
    assert per_worker_problems(config) == []  # nothing per process that must be shared
    assert config.limits.backend == "redis" and config.cache.backend == "redis"
    assert config.governance.store_url.startswith("postgresql")
    hpa = by_kind("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"]["name"] == by_kind("Deployment")["metadata"]["name"]
    metrics = {m["type"]: m for m in hpa["metrics"]}
    assert metrics["Pods"]["pods"]["metric"]["name"] == "sluice_in_flight"
    assert by_kind("PodDisruptionBudget")["spec"]["minAvailable"] >= 1


def compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE / "docker-compose.yaml").read_text())  # type: ignore[no-any-return]


def test_compose_file_is_complete_and_its_files_exist() -> None:
    doc = compose()
    services = doc["services"]
    assert {"gateway-1", "gateway-2", "redis", "postgres", "nginx", "prometheus", "grafana"} <= set(
        services
    )
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE / source).exists(), f"{name}: {source} is missing"
        for dep in service.get("depends_on", []):
            assert dep in services, f"{name} depends on unknown {dep}"
    for gw in ("gateway-1", "gateway-2"):
        assert services[gw]["healthcheck"]["test"][-1].count("/readyz") == 1
        # Compose waits stop_grace_period before SIGKILL: longer than the drain.
        assert int(services[gw]["stop_grace_period"].rstrip("s")) > 30
    nginx = (COMPOSE / "nginx.conf").read_text()
    assert "gateway-1:8080" in nginx and "gateway-2:8080" in nginx
    assert "proxy_buffering off" in nginx  # streams are not held back
    prometheus = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert set(job["static_configs"][0]["targets"]) == {"gateway-1:8080", "gateway-2:8080"}


def test_compose_gateway_config_loads_and_shares_state() -> None:
    text = (COMPOSE / "config.yaml").read_text()
    config = parse_config(text, "deploy/compose/config.yaml", fake_env(text))
    assert per_worker_problems(config) == []
    assert config.observability.metrics_auth is True


def dashboard_metrics() -> set[str]:
    doc = json.loads((COMPOSE / "grafana" / "dashboards" / "sluice.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    return {m for e in exprs for m in re.findall(r"\b(sluice_[a-z_]+)", e)}


def test_grafana_dashboard_queries_metrics_sluice_exports() -> None:
    """Every metric the dashboard queries is one the gateway registers (checked live in
    tests/integration/test_deploy_build.py)."""
    assert dashboard_metrics()
    provisioning = yaml.safe_load(
        (COMPOSE / "grafana" / "provisioning" / "dashboards" / "sluice.yaml").read_text()
    )
    assert provisioning["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dockerfile_is_multi_stage_non_root_and_every_step_is_a_tested_script() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM .* AS (\w+)$", text, flags=re.M)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001", runtime, flags=re.M)
    assert "gcc" not in runtime and "build-essential" not in runtime
    for run in re.findall(r"^RUN (.+?)(?<!\\)$", text, flags=re.M | re.S):
        scripts = re.findall(r"(?:deploy/scripts|/usr/local/lib/sluice)/([\w-]+\.sh)", run)
        assert scripts, f"RUN step without a script: {run!r}"
        for script in scripts:
            assert (DEPLOY / "scripts" / script).stat().st_mode & 0o111


def test_systemd_unit_drains_instead_of_cutting_streams() -> None:
    """The default KillMode=control-group signals every worker at once and cuts streams;
    the unit stops the supervisor only (`mixed`) and waits longer than the drain."""
    import configparser
    import shutil
    import subprocess

    from sluice.cli import main as cli_main
    from sluice.config import ServerConfig

    path = DEPLOY / "systemd" / "sluice.service"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(path)
    service = unit["Service"]
    assert service["KillMode"] == "mixed"
    assert float(service["TimeoutStopSec"]) > ServerConfig().drain_timeout_s
    argv = service["ExecStart"].split()
    serve = cli_main.get_command(None, "serve")  # type: ignore[arg-type]
    assert serve is not None and argv[1] == "serve"
    known = {opt for param in serve.params for opt in getattr(param, "opts", [])}
    assert {a for a in argv[2:] if a.startswith("--")} <= known
    if shutil.which("systemd-analyze"):
        out = subprocess.run(
            ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
        )
        problems = [
            line
            for line in (out.stdout + out.stderr).splitlines()
            if line.strip() and "is not executable" not in line  # not installed here
        ]
        assert problems == []
