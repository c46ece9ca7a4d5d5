"""Feedback metrics keep their labels bounded to the models the gateway serves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from sluice.eval.feedback import Feedback
from sluice.web.feedback import FeedbackMetrics


def test_unknown_models_are_counted_as_other() -> None:
    registry = CollectorRegistry()
    metrics = FeedbackMetrics(registry, frozenset({"gpt-4o-mini"}))
    for i in range(50):
        fb = Feedback(f"r{i}", "t", None, 1.0, "up", None, (), 0.0)
        metrics.observe(None, f"made-up-{i}", fb)
    metrics.observe(
        "gpt-4o-mini", "gpt-4o-mini", Feedback("r", "t", None, 0.4, None, None, (), 0.0)
    )
    text = generate_latest(registry).decode()
    assert 'sluice_feedback_total{kind="up",model="_other",route="_other"} 50.0' in text
    assert 'sluice_feedback_total{kind="score",model="gpt-4o-mini",route="gpt-4o-mini"} 1.0' in text
    assert "made-up" not in text
