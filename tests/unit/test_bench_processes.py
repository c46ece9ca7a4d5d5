"""Child processes of the benchmarks and end-to-end tests (sluice.bench.processes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sluice.bench.processes import Child, free_port, wait_ready


def test_a_child_that_never_gets_ready_is_stopped_not_left_running(tmp_path: Path) -> None:
    """A readiness timeout used to leave the child running: an orphan server for the rest
    of the run, and a `ResourceWarning: subprocess … is still running` that failed
    whichever later test the garbage collector happened to run in."""
    log = tmp_path / "child.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(120)"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    child = Child("sleeper", f"http://127.0.0.1:{free_port()}", process, log)
    try:
        with pytest.raises(RuntimeError, match="did not become ready"):
            wait_ready(child.url + "/readyz", child, timeout=0.3)
        assert process.poll() is not None
    finally:
        child.stop()
