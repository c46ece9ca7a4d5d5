"""`sluice sim` on a port another program holds: a one-line error and exit code 1, not a
traceback."""

from __future__ import annotations

import socket

from click.testing import CliRunner

from sluice.sim.cli import sim_command


def test_busy_port_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = CliRunner().invoke(sim_command, ["--port", str(port)])
    assert result.exit_code == 1, result.output
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output
