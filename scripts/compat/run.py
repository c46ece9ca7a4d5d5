"""`make compat`: the client-library compatibility lane (not part of `make test`).

Starts the simulator and a gateway on free loopback ports (built-in simulator config), makes
one venv per library (`venvs.sh`; they pin conflicting `openai` versions), and runs each
library's common calls (`lib_<name>.py`: plain, stream, tools, strict tools, structured
output, async concurrency, through both front ends where the library has both) against it.
Prints one line per check and a summary; exits 1 when any check failed.

    python scripts/compat/run.py [library ...]
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SLUICE_COMPAT_DIR", Path.home() / ".cache/sluice/compat"))
BIN = Path(sys.executable).parent


def _libraries() -> list[str]:
    lines = (HERE / "libraries.txt").read_text().splitlines()
    return [line.split()[0] for line in lines if line.strip() and not line.startswith("#")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"compat: {proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"compat: {url} did not come up in {timeout_s:.0f} s")


def _start(workdir: Path) -> tuple[list[subprocess.Popen[bytes]], str]:
    sim_port, gw_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "SLUICE_SIM_URL": f"http://127.0.0.1:{sim_port}",
        "SLUICE_SEMANTIC_CACHE": "false",  # every call reaches the simulator
        "SLUICE_RECORDS_URL": f"sqlite:///{workdir / 'compat.db'}",
    }
    logs = open(workdir / "servers.log", "wb")  # noqa: SIM115 - lives as long as the servers
    sim = subprocess.Popen(
        [str(BIN / "sluice"), "sim", "--port", str(sim_port), "--output-tokens", "24"],
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    gateway = subprocess.Popen(
        [str(BIN / "sluice"), "serve", "--port", str(gw_port), "--log-level", "warning"],
        env=env,
        stdout=logs,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    _wait(f"http://127.0.0.1:{sim_port}/sim/stats", sim)
    _wait(f"http://127.0.0.1:{gw_port}/healthz", gateway)
    return [gateway, sim], f"http://127.0.0.1:{gw_port}"


def _run_library(name: str, url: str) -> dict[str, str]:
    python = ROOT / name / "bin" / "python"
    if not (ROOT / name / ".sluice-reqs").exists():
        return {"install": f"fail: venv not installed (see {ROOT / name}.log)"}
    env = {**os.environ, "SLUICE_URL": url, "PYTHONPATH": str(HERE)}
    script = HERE / f"lib_{name.replace('-', '_')}.py"
    try:
        proc = subprocess.run(
            [str(python), str(script)], env=env, capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired:
        return {"run": "fail: timed out after 600 s"}
    sys.stdout.write(proc.stdout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:])["checks"])
    return {"run": f"fail: exit {proc.returncode}: {proc.stderr.strip()[-800:]}"}


def main() -> int:
    wanted = sys.argv[1:] or _libraries()
    ROOT.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        subprocess.run(["bash", str(HERE / "venvs.sh"), name], check=False)
    procs, url = _start(ROOT)
    summary: dict[str, dict[str, str]] = {}
    try:
        for name in wanted:
            summary[name] = _run_library(name, url)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    sys.stdout.write("\ncompat summary\n")
    failed = 0
    for name, checks in summary.items():
        bad = [c for c, v in checks.items() if v != "pass"]
        failed += len(bad)
        state = "ok" if not bad else f"{len(bad)} failed: {', '.join(bad)}"
        sys.stdout.write(f"  {name:<20} {len(checks) - len(bad)}/{len(checks)} {state}\n")
    (ROOT / "results.json").write_text(json.dumps(summary, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
