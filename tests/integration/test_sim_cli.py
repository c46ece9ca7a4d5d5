"""`python -m sluice.sim` as a real process, answering on a loopback port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from sluice.sim import sim_command

pytestmark = pytest.mark.integration

SRC = str(Path(__file__).resolve().parents[2] / "src")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_help_lists_the_flags() -> None:
    result = CliRunner().invoke(sim_command, ["--help"])
    assert result.exit_code == 0
    for flag in ("--host", "--port", "--fault-rate", "--faults", "--seed", "--ttft-ms", "--tps"):
        assert flag in result.output


async def test_module_entry_point_serves() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "sluice.sim", "--port", str(port)],
        *["--faults", "500", "--fault-rate", "1", "--seed", "1"],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, port)
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            async with session.post(url, json=body) as resp:
                assert resp.status == 500  # --fault-rate 1 --faults 500
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=10)
    assert b"SIMULATOR" in err


async def wait_healthy(session: aiohttp.ClientSession, port: int) -> None:
    for _ in range(200):
        try:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the simulator did not come up")
