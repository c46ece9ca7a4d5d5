"""`sluice batch watch`: the status line from both APIs' batch objects."""

from __future__ import annotations

from sluice.batch.cli import Progress, progress_of, render


def test_openai_batch_progress_and_eta() -> None:
    body = {
        "object": "batch",
        "status": "in_progress",
        "request_counts": {"total": 1000, "completed": 240, "failed": 10},
    }
    p = progress_of(body)
    assert p == Progress("in_progress", 1000, 250, 10)
    line = render(p, rate=50.0)
    assert "25.0%" in line and "250/1,000" in line and "failed 10" in line
    assert "50.0 items/s" in line and "ETA 15s" in line  # 750 left at 50/s
    assert "ETA --" in render(p, rate=None)


def test_anthropic_batch_progress_and_the_end() -> None:
    body = {
        "type": "message_batch",
        "processing_status": "ended",
        "request_counts": {
            "processing": 0,
            "succeeded": 7,
            "errored": 2,
            "canceled": 1,
            "expired": 0,
        },
    }
    p = progress_of(body)
    assert p == Progress("ended", 10, 10, 3) and p.ended
    assert "100.0%" in render(p, None) and "done" in render(p, None)
    assert "ETA 1h00m" in render(Progress("in_progress", 3601, 1, 0), rate=1.0)
