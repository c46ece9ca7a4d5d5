"""`sluice bench soak`'s verdict and plot (sluice.bench.soak), on made-up samples."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from sluice.bench.soak import Idle, Sample, verdict, write_csv, write_svg


def _samples(rss_growth: float = 0.0, p99_late: float = 50.0, errors: int = 0) -> list[Sample]:
    out = []
    for i in range(1, 61):  # 10 minutes of 10-second samples
        p99 = p99_late if i > 30 else 50.0
        out.append(
            Sample(
                t_s=i * 10.0,
                rss_mb=200.0 * (1 + rss_growth * i / 60),
                fds=40,
                rps=30.0,
                p50_ms=5.0,
                p99_ms=p99,
                sent=300,
                ok=300,
                expected_refusals=0,
                injected=0,
                unexpected=errors if i == 45 else 0,
                skipped=0,
                load1=1.0,
                latencies_ms=[5.0] * 98 + [p99, p99],
            )
        )
    return out


FLAT = (Idle(30, 10), Idle(31, 10))


def test_a_steady_run_passes() -> None:
    v = verdict(_samples(), warmup_s=60, idle=FLAT)
    assert v.passed, v.lines


def test_each_goal_fails_on_its_own() -> None:
    assert not verdict(_samples(rss_growth=0.3), 60, FLAT).passed
    assert not verdict(_samples(p99_late=80.0), 60, FLAT).passed
    assert not verdict(_samples(errors=1), 60, FLAT).passed
    assert not verdict(_samples(), 60, (Idle(30, 10), Idle(60, 40))).passed


def test_too_short_a_run_gives_no_verdict() -> None:
    assert not verdict(_samples()[:5], warmup_s=60, idle=FLAT).passed


def test_csv_and_svg_are_written(tmp_path: Path) -> None:
    samples = _samples()
    write_csv(samples, tmp_path / "s.csv")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert len(lines) == 61 and "latencies" not in lines[0]
    write_svg(samples, tmp_path / "s.svg", 60, "a <title> & more")
    root = ET.parse(tmp_path / "s.svg").getroot()
    assert root.tag.endswith("svg")
    assert len(root.findall(".//{http://www.w3.org/2000/svg}polyline")) == 6
