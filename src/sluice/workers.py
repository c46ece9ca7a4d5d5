"""`sluice serve --workers N`: N gateway processes sharing one port (SO_REUSEPORT).

The parent forks the workers before any event loop or thread exists, then only supervises:
it forwards SIGTERM/SIGINT to every worker (each drains its in-flight calls for
`server.drain_timeout_s`, as a single process does), restarts a worker that dies on its own
(at most once a second), and kills what is left after the drain timeout.

The kernel spreads new connections over the workers, so any state a call depends on must live
where every worker sees it. `per_worker_problems` names the settings that would silently be
per worker and wrong with N > 1; `sluice serve` refuses to start with them.

Metrics: each worker keeps its own registry and publishes it once a second to a directory the
supervisor creates (`<state_dir>/worker-metrics/<parent pid>`, removed at exit); whichever
worker takes a `/metrics` scrape answers with counters and histograms summed over all workers
and gauges labelled `worker` (`sluice.observe.worker_metrics`). The records store and
`sluice report` always see every worker's calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import click

from sluice.config import SluiceConfig
from sluice.observe.worker_metrics import ENV_DIR, ENV_SLOT


def resolve_workers(value: str) -> int:
    """`auto`: one per core; else a positive integer."""
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"--workers must be a positive integer or 'auto', not {value!r}") from None
    if n < 1:
        raise ValueError(f"--workers must be at least 1, not {n}")
    return n


def per_worker_problems(config: SluiceConfig) -> list[str]:
    """Settings whose state would be kept per worker, where that changes the answer."""
    problems = []
    if config.limits.enabled and config.limits.backend == "memory":
        problems.append(
            "limits.backend is memory: rate limits and budgets would be counted per worker "
            "(N workers allow N times the limit); use limits.backend: redis"
        )
    if config.cache.idempotency.enabled and config.cache.backend == "memory":
        problems.append(
            "cache.backend is memory: an Idempotency-Key retried on another worker would run "
            "the call twice; use cache.backend: redis (or cache.idempotency.enabled: false)"
        )
    agent = config.reliability.agent
    if agent.max_steps is not None or agent.max_cost_usd is not None:
        problems.append(
            "reliability.agent limits are kept in process: an agent run spread over workers "
            "would get N times its step or cost limit; run one worker per process"
        )
    for url in (config.observability.records.store_url, config.governance.store_url):
        if url and _in_memory_sqlite(url):
            problems.append(f"{url}: an in-memory SQLite store is per worker")
    return problems


def _in_memory_sqlite(url: str) -> bool:
    """`sqlite://` (no path) is SQLAlchemy's in-memory database too, not only `:memory:`
    (`sluice.state.engines.is_memory_sqlite`); a string that is no URL is not one."""
    from sqlalchemy.exc import ArgumentError

    from sluice.state.engines import is_memory_sqlite

    try:
        return is_memory_sqlite(url)
    except ArgumentError:
        return False


def check_port_free(host: str, port: int) -> None:
    """Raise OSError if `host:port` cannot be listened on. Bound once without SO_REUSEPORT:
    the workers' own bind would otherwise silently share the port with another
    `sluice serve --workers` (the kernel allows it), and fail with a worker's traceback
    (restarted forever if start-up took > 5 s) when another program holds it."""
    if port == 0:
        return
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does
            probe.bind(address)


def _detach_from_parent(parent: int) -> None:
    """Own process group: a terminal's Ctrl-C (sent to the whole group) reaches the workers
    once, forwarded by the parent, not twice (a second signal cuts the drain short). And a
    SIGTERM when the parent dies, even by SIGKILL: no orphan keeps serving the port."""
    os.setpgid(0, 0)
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl
            os._exit(0)


def _run_in_fork(worker: Callable[[], None], parent: int) -> None:
    """The worker's side of the fork: run, report a crash, and never return."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    _detach_from_parent(parent)
    code = 0
    try:
        worker()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except click.ClickException as exc:  # a config or start-up error: one clean line
        exc.show()
        code = exc.exit_code
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class _Supervisor:
    def __init__(self, worker: Callable[[], None], stop_timeout_s: float) -> None:
        self.worker = worker
        self.stop_timeout_s = stop_timeout_s
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (slot, forked at)
        self.stopping = False
        self.failed = False
        self.last_restart = 0.0

    def spawn(self, slot: int) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.environ[ENV_SLOT] = str(slot)  # its metrics file (sluice.observe.worker_metrics)
            _run_in_fork(self.worker, parent)
        self.children[pid] = (slot, time.monotonic())

    def stop(self, signum: int, _frame: object = None) -> None:
        self.stopping = True
        sig = signal.SIGINT if signum == signal.SIGINT else signal.SIGTERM
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def reap(self, pid: int, status: int) -> None:
        slot, forked = self.children.pop(pid)
        if self.stopping:
            return
        failed_itself = os.WIFEXITED(status) and os.WEXITSTATUS(status) != 0
        if failed_itself and time.monotonic() - forked < 5:
            # Dead at start-up (a port in use, a bad key store...): restarting cannot help.
            _say(f"worker {slot} failed at start-up (status {status}); stopping")
            self.failed = True
            self.stop(signal.SIGTERM)
            return
        _say(f"worker {slot} (pid {pid}) exited with status {status}; restarting")
        time.sleep(max(0.0, 1.0 - (time.monotonic() - self.last_restart)))
        self.last_restart = time.monotonic()
        self.spawn(slot)

    def run(self, count: int) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for slot in range(count):
            self.spawn(slot)
        deadline: float | None = None
        while self.children:
            if self.stopping and deadline is None:
                deadline = time.monotonic() + self.stop_timeout_s + 5
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid:
                self.reap(pid, status)
                continue
            if deadline is not None and time.monotonic() > deadline:
                for left in self.children:
                    os.kill(left, signal.SIGKILL)
            time.sleep(0.1)
        return 1 if self.failed else 0


def _say(message: str) -> None:
    print(f"sluice: {message}", file=sys.stderr)  # noqa: T201  (no logger in the supervisor)


def run_workers(
    count: int,
    worker: Callable[[], None],
    stop_timeout_s: float,
    metrics_dir: Path | None = None,
) -> int:
    """Fork `count` workers running `worker()`; supervise until SIGTERM/SIGINT. Exit code.
    `metrics_dir`: where the workers publish their metrics for one merged `/metrics` view
    (created here, removed at exit)."""
    if metrics_dir is not None:
        try:
            metrics_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # e.g. a read-only state dir: a private temp dir instead
            fallback = Path(tempfile.mkdtemp(prefix="sluice-worker-metrics-"))
            _say(f"cannot create {metrics_dir} ({exc}); worker metrics in {fallback}")
            metrics_dir = fallback
    if metrics_dir is None:
        return _Supervisor(worker, stop_timeout_s).run(count)
    os.environ[ENV_DIR] = str(metrics_dir)
    try:
        return _Supervisor(worker, stop_timeout_s).run(count)
    finally:
        os.environ.pop(ENV_DIR, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)
