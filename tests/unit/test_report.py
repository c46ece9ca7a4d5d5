"""`sluice report`: the pure report (groups, totals, percentiles, unknown costs), its JSON and
table forms, `--since` parsing, and the command's errors on stores it cannot read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from sluice.cli import main
from sluice.observe.records import CallRecord
from sluice.observe.report import (
    GROUPS,
    ReportError,
    build_report,
    format_table,
    load_calls,
    parse_since,
    report_json,
    run_report,
)
from sluice.observe.store import RecordStore

NOW = 1_750_000_000.0


def call(i: int, **kw: object) -> CallRecord:
    fields: dict[str, object] = {
        "request_id": f"r{i}",
        "ts": NOW - 100 + i,
        "user_id": f"u{i % 2}",
        "feature": "chat",
        "route": "gpt-4o-mini",
        "model_requested": "gpt-4o-mini",
        "deployment": "sim-gpt-4o-mini",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": Decimal("0.0000210000"),
        "latency_ms": float(i + 1),
    }
    fields.update(kw)
    return CallRecord(**fields)  # type: ignore[arg-type]


# -- parse_since ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("24h", 86400), ("7d", 7 * 86400), ("2w", 14 * 86400), (" 1.5H ", 5400)],
)
def test_since_durations_count_back_from_now(text: str, seconds: float) -> None:
    assert parse_since(text, NOW) == NOW - seconds


def test_since_iso_dates_and_times() -> None:
    midnight = datetime(2025, 5, 1, tzinfo=UTC).timestamp()
    assert parse_since("2025-05-01", NOW) == midnight
    assert parse_since("2025-05-01T00:00:00", NOW) == midnight  # naive: UTC
    assert parse_since("2025-05-01T02:00:00+02:00", NOW) == midnight
    assert parse_since("2025-05-01T00:00:00Z", NOW) == midnight


@pytest.mark.parametrize("text", ["", "24", "h", "3y", "-1h", "yesterday", "2025-13-01"])
def test_malformed_since_is_a_report_error(text: str) -> None:
    with pytest.raises(ReportError, match="--since"):
        parse_since(text, NOW)


# -- build_report ---------------------------------------------------------------------------


def test_percentiles_interpolate_and_total_is_computed_over_all_calls() -> None:
    # group a: latencies 1..10; group b: 100 and 200. TOTAL percentiles come from all 12.
    records = [call(i, feature="a", latency_ms=float(i + 1)) for i in range(10)]
    records += [call(10, feature="b", latency_ms=100.0), call(11, feature="b", latency_ms=200.0)]
    report = build_report(records, "feature", NOW - 1000)
    a, b = report.groups
    assert (a.group, a.calls, b.group, b.calls) == ("a", 10, "b", 2)
    assert a.latency_ms_p50 == pytest.approx(5.5)
    assert a.latency_ms_p95 == pytest.approx(9.55)
    assert a.latency_ms_p99 == pytest.approx(9.91)
    assert b.latency_ms_p50 == pytest.approx(150.0)
    total = report.total
    assert total.group is None and total.calls == 12
    # sorted: 1..10, 100, 200 -> median between ranks 5 and 6 (6 and 7)
    assert total.latency_ms_p50 == pytest.approx(6.5)
    assert total.latency_ms_p95 == pytest.approx(100 + (200 - 100) * 0.45)
    assert total.latency_ms_p99 == pytest.approx(100 + (200 - 100) * 0.89)
    assert total.input_tokens == 1200 and total.output_tokens == 120


def test_ttft_percentiles_use_only_calls_that_have_one() -> None:
    records = [call(0, ttft_ms=None), call(1, ttft_ms=10.0), call(2, ttft_ms=30.0)]
    total = build_report(records, "model", 0).total
    assert total.ttft_ms_p50 == pytest.approx(20.0)
    assert total.ttft_ms_p95 == pytest.approx(29.0)
    only_plain = build_report([call(0)], "model", 0).total
    assert only_plain.ttft_ms_p50 is None and only_plain.ttft_ms_p95 is None


def test_unknown_costs_are_never_counted_as_zero() -> None:
    records = [
        call(0, model_requested="priced", cost_usd=Decimal("0.5")),
        call(1, model_requested="priced", cost_usd=Decimal("0.25")),
        call(2, model_requested="mixed", cost_usd=Decimal("0.125")),
        call(3, model_requested="mixed", cost_usd=None),
        call(4, model_requested="free", cost_usd=None),
    ]
    groups = {r.group: r for r in build_report(records, "model", 0).groups}
    assert (groups["priced"].cost_usd, groups["priced"].unpriced_calls) == (Decimal("0.75"), 0)
    assert (groups["mixed"].cost_usd, groups["mixed"].unpriced_calls) == (Decimal("0.125"), 1)
    assert (groups["free"].cost_usd, groups["free"].unpriced_calls) == (None, 1)
    total = build_report(records, "model", 0).total
    assert (total.cost_usd, total.unpriced_calls) == (Decimal("0.875"), 2)


def test_error_rate_cache_hits_savings_and_cache_tokens() -> None:
    records = [
        call(0, status=200, cache_status="exact"),
        call(1, status=429, error_type="rate_limited", cost_usd=Decimal(0)),
        call(2, status=500, cache_status="miss"),
        call(3, status=200, cache_status="semantic"),
        call(4, cache_read_tokens=80, cache_write_tokens=5, cost_saved_usd=Decimal("0.00001")),
    ]
    total = build_report(records, "model", 0).total
    assert total.errors == 2 and total.error_rate_pct == pytest.approx(40.0)
    assert total.cache_hits == 2 and total.cache_hit_rate_pct == pytest.approx(40.0)
    assert (total.cache_read_tokens, total.cache_write_tokens) == (80, 5)
    assert total.cost_saved_usd == Decimal("0.00001")


def test_grouping_sorts_by_calls_and_keeps_calls_without_a_value() -> None:
    records = [
        call(0, user_id="alice"),
        call(1, user_id=None),
        call(2, user_id="bob"),
        call(3, user_id="bob"),
        call(4, user_id=None),
        call(5, user_id="carol"),
    ]
    report = build_report(records, "user", 0)
    assert [(r.group, r.calls) for r in report.groups] == [
        ("bob", 2),
        (None, 2),
        ("alice", 1),
        ("carol", 1),
    ]
    assert report.total.calls == 6


@pytest.mark.parametrize("by", list(GROUPS))
def test_every_grouping_reads_its_field(by: str) -> None:
    records = [call(0, **{GROUPS[by]: "x"}), call(1, **{GROUPS[by]: "y"})]
    assert sorted(str(r.group) for r in build_report(records, by, 0).groups) == ["x", "y"]


def test_attempt_records_and_old_calls_are_left_out() -> None:
    records = [
        call(0, ts=NOW - 5000),  # before since
        call(1, status=500, attempts=3, input_tokens=0, output_tokens=0),
        call(2, kind="attempt", attempt_of="r1", status=500),
        call(3, kind="attempt", attempt_of="r1", status=500),
    ]
    report = build_report(records, "model", NOW - 1000)
    assert report.total.calls == 1 and report.total.errors == 1


def test_empty_report() -> None:
    report = build_report([], "model", NOW)
    assert report.groups == []
    total = report.total
    assert (total.calls, total.errors, total.cost_usd, total.unpriced_calls) == (
        0,
        0,
        Decimal(0),
        0,
    )
    assert total.error_rate_pct is None and total.latency_ms_p50 is None
    data = report_json(report)
    assert data["groups"] == [] and data["total"]["calls"] == 0
    assert data["total"]["cost_usd"] == "0" and data["total"]["error_rate_pct"] is None
    table = format_table(report)
    assert "(no calls in this period)" in table
    assert any(line.startswith("TOTAL") for line in table.splitlines())


def test_unknown_grouping_is_refused() -> None:
    with pytest.raises(ReportError, match="cannot group by"):
        build_report([], "color", 0)


def test_groups_agree_with_the_store_aggregate(tmp_path: Path) -> None:
    records = [
        call(i, user_id=f"u{i % 3}", cost_usd=None if i % 4 == 0 else Decimal("0.001"))
        for i in range(20)
    ]
    records += [call(20 + i, ttft_ms=float(i), stream=True, status=502) for i in range(5)]
    store = RecordStore.open(f"sqlite:///{tmp_path / 'r.db'}")
    store.write_batch(records)
    stats = store.aggregate(None, "user_id")
    store.close()
    rows = build_report(records, "user", 0).groups
    assert len(rows) == len(stats)
    for row, agg in zip(rows, stats, strict=True):
        assert row.group == agg["group"] and row.calls == agg["calls"]
        assert row.errors == agg["errors"] and row.unpriced_calls == agg["unpriced_calls"]
        assert row.input_tokens == agg["input_tokens"]
        assert (row.cost_usd or Decimal(0)) == agg["cost_usd"]
        assert row.latency_ms_p95 == agg["latency_ms_p95"]
        assert row.ttft_ms_p50 == agg["ttft_ms_p50"]


# -- rendering ------------------------------------------------------------------------------


def test_json_keeps_money_exact_and_numbers_as_numbers() -> None:
    records = [
        call(0, cost_usd=Decimal("0.0000000100")),
        call(1, cost_usd=Decimal("0.0000000200")),
        call(2, cost_usd=None, model_requested="mystery"),
    ]
    data = json.loads(json.dumps(report_json(build_report(records, "model", NOW - 1000))))
    assert data["by"] == "model"
    assert data["since"] == datetime.fromtimestamp(NOW - 1000, UTC).isoformat()
    mini, mystery = data["groups"]
    assert mini["cost_usd"] == "0.0000000300" and mini["calls"] == 2
    assert mystery["cost_usd"] is None and mystery["unpriced_calls"] == 1
    assert data["total"]["cost_usd"] == "0.0000000300" and data["total"]["unpriced_calls"] == 1
    assert isinstance(data["total"]["latency_ms_p50"], float)
    assert isinstance(data["total"]["input_tokens"], int)


def test_table_has_a_line_per_group_and_a_total() -> None:
    records = [
        call(0, model_requested="gpt-4o-mini", cost_usd=Decimal("1.5")),
        call(1, model_requested="claude-haiku", cost_usd=None, status=500),
        call(2, model_requested="claude-haiku", cost_usd=Decimal("0.25")),
        call(3, model_requested="mystery", cost_usd=None),
    ]
    table = format_table(build_report(records, "model", 0), source="sqlite:///x.db")
    lines = table.splitlines()
    assert "by model" in lines[0] and "sqlite:///x.db" in lines[0]
    header = lines[2]
    for column in ("calls", "errors", "err %", "cost USD", "p99 ms", "ttft p95", "hit %"):
        assert column in header
    haiku = next(line for line in lines if line.startswith("claude-haiku"))
    assert "0.250000 +1 unknown" in haiku and "50.0" in haiku
    mystery = next(line for line in lines if line.startswith("mystery"))
    assert "unknown" in mystery
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert "1.750000 +2 unknown" in total
    # fixed width: the columns line up with the header
    assert len(haiku) == len(total) == len(header)
    assert header.index("cost USD") + len("cost USD") == total.index("unknown") + len("unknown")


# -- reading stores and the command ---------------------------------------------------------


def _store(tmp_path: Path, records: list[CallRecord]) -> str:
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    store = RecordStore.open(url)
    store.write_batch(records)
    store.close()
    return url


def test_load_calls_reads_only_calls_since(tmp_path: Path) -> None:
    url = _store(
        tmp_path,
        [call(0, ts=NOW - 5000), call(1), call(2, kind="attempt", attempt_of="r1")],
    )
    loaded = load_calls(url, NOW - 1000)
    assert [r.request_id for r in loaded] == ["r1"]
    assert loaded[0].cost_usd == Decimal("0.0000210000") and loaded[0].input_preview is None


def test_run_report_json(tmp_path: Path) -> None:
    url = _store(tmp_path, [call(i) for i in range(4)])
    data = json.loads(run_report(url, "1h", "user", as_json=True, now=NOW))
    assert [(g["group"], g["calls"]) for g in data["groups"]] == [("u0", 2), ("u1", 2)]
    assert data["total"]["cost_usd"] == "0.0000840000"


def test_missing_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    with pytest.raises(ReportError, match="does not exist"):
        load_calls(f"sqlite:///{missing}", 0)
    assert not missing.exists()


def test_store_without_the_table(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(ReportError, match="has no call_records table"):
        load_calls(f"sqlite:///{empty}", 0)


def test_store_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("this is not sqlite " * 100)
    with pytest.raises(ReportError, match="cannot"):
        load_calls(f"sqlite:///{junk}", 0)


def test_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="not a database URL"):
        load_calls("not a url", 0)
    with pytest.raises(ReportError, match="cannot open record store") as info:
        load_calls("nosuchdialect://u:secret@h/db", 0)
    assert "secret" not in str(info.value) and "***" in str(info.value)


def test_cli_table_json_and_store_from_config(tmp_path: Path) -> None:
    url = _store(tmp_path, [call(0), call(1, model_requested="gpt-4o")])
    runner = CliRunner()
    # the records are from NOW (mid-June 2025): an ISO --since reaches them
    table = runner.invoke(main, ["report", "--store", url, "--since", "2020-01-01"])
    assert table.exit_code == 0, table.output
    assert "gpt-4o-mini" in table.output and "TOTAL" in table.output
    config = tmp_path / "sluice.yaml"
    config.write_text(f"observability:\n  records:\n    store_url: {url}\n")
    out = runner.invoke(
        main,
        ["report", "--config", str(config), "--since", "2020-01-01", "--json", "--by", "model"],
    )
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["total"]["calls"] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "soon"], "--since 'soon'"),
        (["--store", "sqlite:///missing.db"], "does not exist"),
        (["--by", "colour"], "Invalid value for '--by'"),
    ],
)
def test_cli_errors_are_clean(args: list[str], message: str) -> None:
    out = CliRunner().invoke(main, ["report", *args])
    assert out.exit_code != 0
    assert message in out.output
    assert out.exception is None or isinstance(out.exception, SystemExit)


def test_cli_default_store_is_the_builtin_configs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLUICE_RECORDS_URL", raising=False)
    out = CliRunner().invoke(main, ["report"])  # sqlite:///sluice.db in the (empty) cwd
    assert out.exit_code == 1 and "sluice.db does not exist" in out.output


def test_cli_config_without_a_store(tmp_path: Path) -> None:
    config = tmp_path / "sluice.yaml"
    config.write_text("observability:\n  records:\n    store_url: null\n")
    out = CliRunner().invoke(main, ["report", "--config", str(config)])
    assert out.exit_code == 1 and "pass --store" in out.output
