"""Run llama.cpp's HTTP server in this process until SIGTERM/SIGINT.

xllamacpp's `Server` starts llama.cpp's own server (the same C++ code as `llama-server`) on its
own threads; this module only sets its parameters, waits until `/health` answers 200 (it answers
503 while the model loads) and prints the base URL an OpenAI-kind provider should use.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluice.localmodel.models import LocalModelError, ModelFile, verify
from sluice.workers import check_port_free


@dataclass(frozen=True, slots=True)
class LocalServerConfig:
    model: ModelFile
    host: str = "127.0.0.1"
    port: int = 8090
    n_ctx: int = 4096  # shared by all slots: each of n_parallel slots gets n_ctx / n_parallel
    n_parallel: int = 1
    threads: int = 0  # 0: all cores
    alias: str | None = None  # the model name clients send; default: the model's name

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"


def _params(cfg: LocalServerConfig) -> Any:
    try:
        import xllamacpp
    except ImportError as exc:
        raise LocalModelError(
            "llama.cpp's server is not installed: pip install 'sluice[local]'"
        ) from exc
    params = xllamacpp.CommonParams()
    params.model.path = str(cfg.model.path)
    params.hostnames = [cfg.host]
    params.port = cfg.port
    params.n_ctx = cfg.n_ctx
    params.n_parallel = cfg.n_parallel
    params.cpuparams.n_threads = cfg.threads or (os.cpu_count() or 1)
    params.cpuparams_batch.n_threads = params.cpuparams.n_threads
    # A set, not a string: a plain string is read as a set of its characters.
    params.model_alias = {cfg.alias or cfg.model.name}
    params.endpoint_slots = True  # /slots shows busy slots (tests check a dropped call frees one)
    params.endpoint_metrics = True
    _check_port_free(cfg.host, cfg.port)
    try:
        return xllamacpp.Server(params)
    except RuntimeError as exc:  # llama.cpp says only "please check the input params"
        raise LocalModelError(
            f"llama.cpp could not load {cfg.model.path} (not a GGUF model llama.cpp can run?): "
            f"{exc}"
        ) from None


def _check_port_free(host: str, port: int) -> None:
    """llama.cpp fails on a port in use with the same opaque error as on a bad model."""
    try:
        check_port_free(host, port)
    except OSError as exc:
        raise LocalModelError(f"cannot listen on {host}:{port}: {exc}") from None


def wait_healthy(base: str, timeout_s: float) -> None:
    """Poll `/health` until 200; llama.cpp answers 503 `Loading model` until the model is in."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise LocalModelError(f"llama.cpp server at {base} was not healthy within {timeout_s:.0f}s")


def serve_forever(cfg: LocalServerConfig, announce: Callable[[str], None]) -> None:
    """Verify, start, announce the URL, then block until SIGTERM or SIGINT."""
    verify(cfg.model)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = _params(cfg)
    # A stop asked for while the model loads is honoured once it has loaded: llama.cpp's
    # server cannot be torn down mid-load (its destructor would wait forever).
    wait_healthy(cfg.url.removesuffix("/v1"), timeout_s=120)
    if not stop.is_set():
        announce(cfg.url)
        stop.wait()
    del server  # the binding stops llama.cpp's threads when the object goes
