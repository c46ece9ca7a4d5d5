"""`sluice local-model` refuses what it cannot serve in one line, without a traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from sluice.localmodel.cli import local_model

pytest.importorskip("xllamacpp")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(local_model, list(args))
    return result.exit_code, result.output + repr(result.exception)


def test_a_gguf_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model\n")
    code, out = run("--model", str(bad), "--port", "0")
    assert code == 1
    assert "could not load" in out and "RuntimeError" not in out


def test_a_port_in_use_is_refused() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        code, out = run("--port", str(held.getsockname()[1]))
    assert code == 1
    assert "in use" in out and "RuntimeError" not in out
