"""Start the simulator and the gateway as real child processes on loopback.

Used by `sluice demo`, `sluice bench` and the end-to-end tests, so all three exercise the
same thing a user runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        """Resident memory of the process (Linux /proc), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far, all threads, user + system (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tree(self) -> list[int]:
        """This process and its descendants (a `sluice serve --workers N` parent and its
        workers), from /proc/<pid>/task/<tid>/children."""
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    todo.extend(int(c) for c in task.read_text().split())
                except OSError:
                    continue
        return pids

    def tree_cpu_seconds(self) -> float:
        """CPU time of the process and all its descendants (`cpu_seconds` of each)."""
        total = 0.0
        for pid in self.tree():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:  # exited meanwhile
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _sluice_command() -> list[str]:
    return [sys.executable, "-m", "sluice.cli"]


# A cap, not a delay: `wait_ready` returns as soon as the child answers. A cold start imports
# the whole gateway (~2.5 s of CPU); on a loaded 2-core host (CI beside other jobs, tests in
# parallel) that took over 20 s of wall time.
READY_TIMEOUT_S = 60.0


def wait_ready(url: str, child: Child, timeout: float = READY_TIMEOUT_S) -> None:
    """Return once `url` answers 200; else stop the child (no orphan) and raise."""
    try:
        _wait_ready(url, child, timeout)
    except BaseException:
        child.stop()
        raise


def _wait_ready(url: str, child: Child, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(
                f"{child.name} exited with {child.process.returncode}; "
                f"log: {child.log_path.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not become ready at {url} in {timeout:.0f}s")


def _spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        _sluice_command() + args, stdout=log, stderr=subprocess.STDOUT, env=env
    )
    log.close()
    return Child(name, "", process, log_path)


def start_sim(log_dir: Path, port: int | None = None, extra: list[str] | None = None) -> Child:
    port = port or free_port()
    child = _spawn(
        "sim",
        ["sim", "--host", "127.0.0.1", "--port", str(port), *(extra or [])],
        dict(os.environ),
        log_dir,
    )
    child.url = f"http://127.0.0.1:{port}"
    wait_ready(child.url + "/healthz", child)
    return child


def start_gateway(
    log_dir: Path,
    sim_url: str,
    port: int | None = None,
    config: str | None = None,
    env: dict[str, str] | None = None,
    workers: int | None = None,
) -> Child:
    port = port or free_port()
    child_env = {**os.environ, "SLUICE_SIM_URL": sim_url, **(env or {})}
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if config:
        args += ["--config", config]
    if workers is not None:
        args += ["--workers", str(workers)]
    child = _spawn("gateway", args, child_env, log_dir)
    child.url = f"http://127.0.0.1:{port}"
    wait_ready(child.url + "/readyz", child)
    return child


@contextmanager
def sim_and_gateway(
    log_dir: Path,
    sim_args: list[str] | None = None,
    config: str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[Child, Child]]:
    sim = start_sim(log_dir, extra=sim_args)
    try:
        gateway = start_gateway(log_dir, sim.url, config=config, env=env)
        try:
            yield sim, gateway
        finally:
            gateway.stop()
    finally:
        sim.stop()


def start_local_model(
    log_dir: Path, port: int | None = None, extra: list[str] | None = None
) -> Child:
    """`sluice local-model` (llama.cpp + a bundled GGUF); `child.url` is its /v1 base URL."""
    port = port or free_port()
    child = _spawn(
        "local-model",
        ["local-model", "--host", "127.0.0.1", "--port", str(port), *(extra or [])],
        dict(os.environ),
        log_dir,
    )
    child.url = f"http://127.0.0.1:{port}/v1"
    wait_ready(f"http://127.0.0.1:{port}/health", child, timeout=120)
    return child
