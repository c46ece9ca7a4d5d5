"""Where embedded state lives: `state_dir`, and relative SQLite paths resolved inside it.

A relative `sqlite:///sluice.db` used to land in whatever directory the server was started
from; now every relative SQLite URL or file path in the config is taken relative to
`state_dir` (default `$XDG_DATA_HOME/sluice`, else `~/.local/share/sluice`; the config's
`state_dir` or `SLUICE_STATE_DIR` overrides it). Absolute paths and server URLs are kept.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_MEMORY = ("", ":memory:")


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$SLUICE_STATE_DIR`, else `$XDG_DATA_HOME/sluice`, else `~/.local/share/sluice`."""
    env = os.environ if env is None else env

    def var(name: str) -> str | None:  # a config's own mapping first, then the process's
        return env.get(name) or os.environ.get(name)

    if state := var("SLUICE_STATE_DIR"):
        return Path(state).expanduser()
    base = var("XDG_DATA_HOME") or str(Path("~/.local/share").expanduser())
    return Path(base).expanduser() / "sluice"


def resolve_file(path: str, state_dir: Path) -> str:
    """`path` inside `state_dir` when relative (`~` expanded). Pure: the directory is made
    when the file is first opened (`sluice.state.engines`)."""
    file = Path(path).expanduser()
    return str(file if file.is_absolute() else state_dir / file)


def resolve_url(url: str, state_dir: Path) -> str:
    """A SQLite URL with a relative file path, made absolute inside `state_dir`; any other
    URL as it is. (`sqlite:///x.db` is relative, `sqlite:////abs/x.db` absolute.)"""
    scheme, sep, rest = url.partition(":///")
    if not sep or not scheme.startswith("sqlite"):
        return url
    path, qmark, query = rest.partition("?")
    if path in _MEMORY or path.startswith("/") or path.startswith("file:"):
        return url
    return f"{scheme}:///{resolve_file(path, state_dir)}{qmark}{query}"
