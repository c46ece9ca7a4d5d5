"""The queue's and jobs' settings: defaults, state_dir resolution, backend choice."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sluice.config import SluiceConfig, with_state_dir
from sluice.queue import QueueSettings, build_queue
from sluice.queue.base import Priority, priority_of


def test_relative_sqlite_urls_live_in_state_dir(tmp_path: Path) -> None:
    config = with_state_dir(SluiceConfig(state_dir=str(tmp_path)))
    assert config.queue.url == f"sqlite:///{tmp_path / 'sluice-queue.db'}"
    assert config.jobs.store_url == f"sqlite:///{tmp_path / 'sluice.db'}"


def test_backend_by_url() -> None:
    assert build_queue(QueueSettings(url="sqlite:///x.db")).backend == "sqlite"
    assert build_queue(QueueSettings(url="postgresql://u@h/db")).backend == "postgresql"
    with pytest.raises(ValueError, match=r"queue\.url"):
        build_queue(QueueSettings(url="redis://localhost"))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        QueueSettings(name="Bad-Name;drop")
    with pytest.raises(ValidationError):
        QueueSettings(lock_timeout_s=0)


def test_priority_order_and_rounding() -> None:
    assert Priority.INTERACTIVE > Priority.JOB > Priority.BATCH
    assert priority_of(15) is Priority.JOB
    assert priority_of(-5) is Priority.BATCH
    assert priority_of(99) is Priority.INTERACTIVE
