"""`sluice serve --workers N`: real processes sharing one port, limits shared through Redis,
refusal of per-worker state, restart of a killed worker, and a drain that finishes in-flight
calls."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from sluice.bench.processes import Child, free_port, start_sim, wait_ready

pytestmark = pytest.mark.integration
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    child = start_sim(tmp_path_factory.mktemp("sim"))
    yield child
    child.stop()


def write_config(path: Path, sim_url: str, **extra: object) -> Path:
    prefix = f"sluice-test:workers:{uuid.uuid4().hex}:"
    config = {
        "governance": {"auth": {"enabled": False}},
        "observability": {"records": {"store_url": f"sqlite:///{path.parent / 'records.db'}"}},
        "cache": {"backend": "redis", "redis_url": REDIS_URL, "key_prefix": prefix},
        "providers": {
            "sim": {"kind": "openai", "api_base": sim_url + "/v1", "forward_headers": ["x-sim-*"]}
        },
        "deployments": [{"id": "sim-mini", "provider": "sim", "model": "gpt-4o-mini"}],
        **extra,
    }
    path.write_text(yaml.safe_dump(config))
    return path


def serve(config: Path, workers: str, port: int) -> subprocess.Popen[bytes]:
    """The gateway's output goes to a file next to the config (read it when a test fails)."""
    log = (config.parent / "gateway.log").open("wb")
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
                "--workers",
                workers,
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a shell job would be
        )
    finally:
        log.close()


def worker_pids(parent: int) -> set[int]:
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def post(
    url: str, body: dict[str, object], headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    req = urllib.request.Request(
        url + "/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def open_streams(sim: Child) -> int:
    with urllib.request.urlopen(sim.url + "/sim/stats", timeout=10) as resp:
        return int(json.loads(resp.read())["open_streams"])


def ask(url: str) -> int:
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
    }
    return post(url, body)[0]


def test_per_worker_state_is_refused_at_start(tmp_path: Path, sim: Child) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        sim.url,
        limits={"enabled": True, "backend": "memory", "gateway": {"rpm": 5}},
    )
    proc = serve(config, "2", free_port())
    proc.wait(timeout=60)
    out = (tmp_path / "gateway.log").read_bytes()
    assert proc.returncode == 1
    assert b"limits.backend is memory" in out and b"Traceback" not in out


def test_two_workers_share_the_port_and_limits_stay_exact(tmp_path: Path, sim: Child) -> None:
    limits = {
        "enabled": True,
        "backend": "redis",
        "redis_url": REDIS_URL,
        "key_prefix": f"sluice-test:workers:{uuid.uuid4().hex}:",
        "gateway": {"rpm": 12},
    }
    config = write_config(tmp_path / "c.yaml", sim.url, limits=limits)
    port = free_port()
    proc = serve(config, "2", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/readyz", Child("gateway", url, proc, tmp_path / "none"), timeout=60)
        time.sleep(1.0)  # the second worker may bind a moment after the first
        assert len(worker_pids(proc.pid)) == 2
        codes = [ask(url) for _ in range(30)]
        assert codes.count(200) == 12 and codes.count(429) == 18  # one limit, not one per worker
        # A worker killed outright is replaced; the port keeps answering meanwhile.
        victim = min(worker_pids(proc.pid))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            pids = worker_pids(proc.pid)
            if len(pids) == 2 and victim not in pids:
                break
            time.sleep(0.2)
        assert len(worker_pids(proc.pid)) == 2 and victim not in worker_pids(proc.pid)
        assert ask(url) == 429  # still limited, still served
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0


def drain_with_streams_in_flight(
    tmp_path: Path, sim: Child, streams: int, stop: Callable[[subprocess.Popen[bytes]], None]
) -> None:
    """Two workers; `streams` paced streams in flight (~3-4 s each); `stop` signals; every
    stream must still end with [DONE] and the parent exit 0."""
    config = write_config(tmp_path / "c.yaml", sim.url, server={"drain_timeout_s": 20})
    port = free_port()
    proc = serve(config, "2", port)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/readyz", Child("gateway", url, proc, tmp_path / "none"), timeout=60)
    time.sleep(1.0)
    stream = {
        "model": "gpt-4o-mini",
        "stream": True,
        "max_tokens": 40,
        "messages": [{"role": "user", "content": "hi"}],
    }
    pace = {"x-sim-tps": "10", "x-sim-output-tokens": "40"}  # ~4 s per answer
    before = open_streams(sim)
    with ThreadPoolExecutor(streams) as pool:
        calls = [pool.submit(post, url, stream, pace) for _ in range(streams)]
        deadline = time.monotonic() + 30
        while open_streams(sim) < before + streams and time.monotonic() < deadline:
            time.sleep(0.05)  # until all of them are streaming from the simulator
        stop(proc)
        results = [c.result() for c in calls]
    for status, body in results:
        assert status == 200 and body.rstrip().endswith(b"data: [DONE]")
    proc.wait(timeout=60)
    assert proc.returncode == 0


def test_sigterm_drains_in_flight_calls_on_every_worker(tmp_path: Path, sim: Child) -> None:
    drain_with_streams_in_flight(tmp_path, sim, 4, lambda proc: proc.send_signal(signal.SIGTERM))


@pytest.mark.parametrize("reuse_port", [False, True])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_refused_in_one_line(
    tmp_path: Path, sim: Child, workers: str, reuse_port: bool
) -> None:
    """Held by another program, or by another `sluice serve --workers` (SO_REUSEPORT), which
    the kernel would otherwise let this one share silently."""
    with socket.socket() as held:
        if reuse_port:
            held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", 0))
        held.listen()
        proc = serve(write_config(tmp_path / "c.yaml", sim.url), workers, held.getsockname()[1])
        proc.wait(timeout=60)
    out = (tmp_path / "gateway.log").read_bytes()
    assert proc.returncode == 1
    assert b"in use" in out and b"Traceback" not in out


def test_ctrl_c_to_the_process_group_still_drains(tmp_path: Path, sim: Child) -> None:
    """A terminal's Ctrl-C signals the whole group: each worker must see it once (from the
    parent), not twice, or the second one cuts its in-flight streams."""
    drain_with_streams_in_flight(tmp_path, sim, 2, lambda proc: os.killpg(proc.pid, signal.SIGINT))


def test_workers_do_not_outlive_a_killed_parent(tmp_path: Path, sim: Child) -> None:
    port = free_port()
    proc = serve(write_config(tmp_path / "c.yaml", sim.url), "2", port)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/readyz", Child("gateway", url, proc, tmp_path / "none"), timeout=60)
    time.sleep(1.0)
    pids = worker_pids(proc.pid)
    assert len(pids) == 2
    proc.kill()
    proc.wait(timeout=10)
    deadline = time.monotonic() + 30
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = {p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)}
        time.sleep(0.2)
    for pid in alive:  # clean up before failing
        os.kill(pid, signal.SIGKILL)
    assert not alive, "orphaned workers kept serving the port"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


def _requests_total(url: str) -> tuple[float, set[str]]:
    """sluice_requests_total (all labels) and the `worker` labels of sluice_in_flight, from a
    scrape on a fresh connection (the kernel picks the worker)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    total, workers = 0.0, set()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == "sluice_requests_total":
                total += s.value
            if s.name == "sluice_in_flight":
                workers.add(s.labels.get("worker", ""))
    return total, workers


def test_metrics_scraped_from_any_worker_count_every_workers_calls(
    tmp_path: Path, sim: Child
) -> None:
    records = {"store_url": f"sqlite:///{tmp_path / 'records.db'}"}
    config = write_config(
        tmp_path / "c.yaml",
        sim.url,
        observability={"records": records, "metrics_auth": False},
        state_dir=str(tmp_path / "state"),
    )
    port = free_port()
    proc = serve(config, "2", port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/readyz", Child("gateway", url, proc, tmp_path / "none"), timeout=60)
        time.sleep(1.0)
        assert len(worker_pids(proc.pid)) == 2
        with ThreadPoolExecutor(8) as pool:  # new connections, spread over both workers
            codes = list(pool.map(lambda _: ask(url), range(40)))
        assert codes == [200] * 40
        time.sleep(2.5)  # each worker publishes once a second
        scrapes = [_requests_total(url) for _ in range(12)]
        assert {total for total, _ in scrapes} == {40.0}
        assert all(workers == {"0", "1"} for _, workers in scrapes)
        assert list((tmp_path / "state" / "worker-metrics").iterdir())  # the shared directory
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert not list((tmp_path / "state" / "worker-metrics").iterdir())  # removed at exit
