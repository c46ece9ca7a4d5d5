"""What the dashboard shows, computed from call records.

Everything here is synchronous: the `load_*` functions do blocking I/O on the `RecordStore`
(call them through `asyncio.to_thread`), the others are pure functions over records. Only
`kind="call"` records are counted, as in `RecordStore.aggregate`. Money is exact: `Decimal`
sums, sent as plain decimal strings (never floats, never exponent notation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sluice.observe.records import CallRecord
from sluice.observe.redact import redact
from sluice.observe.store import GroupStats, RecordStore, percentile


@dataclass(frozen=True, slots=True)
class Period:
    name: str
    seconds: int
    bucket_s: int  # width of one time-series bucket


PERIODS: dict[str, Period] = {
    p.name: p
    for p in (
        Period("1h", 3_600, 60),  # 60 buckets of a minute
        Period("24h", 86_400, 1_800),  # 48 buckets of 30 minutes
        Period("7d", 604_800, 14_400),  # 42 buckets of 4 hours
    )
}
DEFAULT_PERIOD = "24h"
TOP_SERIES = 8  # cost series per chart; the rest are summed into "(other)"
NONE_LABEL = "(none)"
OTHER_LABEL = "(other)"
_KEY_ID_MAX = 32


def money(value: Decimal) -> str:
    """A plain decimal string without trailing zeros: Decimal("1.50E-7") → "0.00000015"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- reading the store (blocking) ----------------------------------------------------------


def load_calls(store: RecordStore, since: float, until: float) -> list[CallRecord]:
    """The call records (attempt records left out) with `since <= ts < until`, oldest first."""
    return [r for r in store.query(since, until) if r.kind == "call"]


def load_recent(store: RecordStore, until: float, limit: int) -> list[CallRecord]:
    """The newest `limit` call records before `until`, newest first. Attempt records share
    the table, so read more rows until `limit` calls are found or the table runs out."""
    rows = max(limit * 4, 64)
    while True:
        records = store.query(until=until, limit=rows, newest_first=True)
        calls = [r for r in records if r.kind == "call"]
        if len(calls) >= limit or len(records) < rows:
            return calls[:limit]
        rows *= 4


def load_user_stats(store: RecordStore, since: float, until: float) -> list[GroupStats]:
    return store.aggregate(since, "user_id", until=until)


CACHE_TIERS = ("exact", "normalized", "semantic", "stale")


# --- payloads -------------------------------------------------------------------------------


def summary(calls: Sequence[CallRecord]) -> dict[str, Any]:
    """Totals over the calls: counts, rates, money, tokens and latency percentiles."""
    cost = saved = Decimal(0)
    errors = hits = unpriced = 0
    guarded = {"block": 0, "flag": 0, "mask": 0}  # calls with such a guard verdict
    tokens = [0, 0, 0, 0]
    tiers = dict.fromkeys(CACHE_TIERS, 0)  # hits per cache tier (exact, normalized, semantic)
    for r in calls:
        if r.guards:
            for outcome in guarded:
                guarded[outcome] += f"={outcome}" in r.guards
        errors += r.is_error
        hits += r.cache_hit
        if r.cache_status in tiers:
            tiers[r.cache_status] += 1
        if r.cost_usd is None:
            unpriced += 1
        else:
            cost += r.cost_usd
        if r.cost_saved_usd is not None:
            saved += r.cost_saved_usd
        for i, n in enumerate(
            (r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens)
        ):
            tokens[i] += n
    latencies = sorted(r.latency_ms for r in calls)
    return {
        "calls": len(calls),
        "errors": errors,
        "error_rate": _rate(errors, len(calls)),
        "cost_usd": money(cost),
        "unpriced_calls": unpriced,
        "cost_saved_usd": money(saved),
        "input_tokens": tokens[0],
        "output_tokens": tokens[1],
        "cache_read_tokens": tokens[2],
        "cache_write_tokens": tokens[3],
        "total_tokens": tokens[0] + tokens[1],
        "cache_hits": hits,
        "cache_hits_by_tier": tiers,
        "cache_hit_rate": _rate(hits, len(calls)),
        "guard_blocked": guarded["block"],
        "guard_flagged": guarded["flag"],
        "guard_masked": guarded["mask"],
        "latency_ms_p50": percentile(latencies, 50),
        "latency_ms_p95": percentile(latencies, 95),
        "latency_ms_p99": percentile(latencies, 99),
    }


def _cost_series(calls: Iterable[tuple[int, str, Decimal]], buckets: int) -> dict[str, Any]:
    """Cost per bucket for each label, the TOP_SERIES largest kept, the others summed."""
    per_label: dict[str, list[Decimal]] = {}
    for index, label, cost in calls:
        values = per_label.get(label)
        if values is None:
            values = per_label[label] = [Decimal(0)] * buckets
        values[index] += cost
    ranked = sorted(per_label.items(), key=lambda kv: (-sum(kv[1], Decimal(0)), kv[0]))
    if len(ranked) > TOP_SERIES:
        tail = [values for _, values in ranked[TOP_SERIES - 1 :]]
        rest = [sum(col, Decimal(0)) for col in zip(*tail, strict=True)]
        ranked = [*ranked[: TOP_SERIES - 1], (OTHER_LABEL, rest)]
    series = [
        {
            "name": label,
            "values": [money(v) for v in values],
            "total": money(sum(values, Decimal(0))),
        }
        for label, values in ranked
    ]
    total = sum((sum(values, Decimal(0)) for _, values in ranked), Decimal(0))
    return {"series": series, "total": money(total)}


def timeseries(
    calls: Sequence[CallRecord], since: float, until: float, bucket_s: int
) -> dict[str, Any]:
    """Per-bucket cost (by feature and by model), latency percentiles, cache hit and error
    rates. Buckets are aligned to multiples of `bucket_s` since the epoch; the first one
    starts at or before `since` and the last one holds `until`."""
    start = math.floor(since / bucket_s) * bucket_s
    count = max(1, math.ceil((until - start) / bucket_s))
    n_calls, n_errors, n_hits = [0] * count, [0] * count, [0] * count
    unpriced = [0] * count
    latencies: list[list[float]] = [[] for _ in range(count)]
    by_feature: list[tuple[int, str, Decimal]] = []
    by_model: list[tuple[int, str, Decimal]] = []
    for r in calls:
        i = min(count - 1, max(0, int((r.ts - start) // bucket_s)))
        n_calls[i] += 1
        n_errors[i] += r.is_error
        n_hits[i] += r.cache_hit
        latencies[i].append(r.latency_ms)
        if r.cost_usd is None:
            unpriced[i] += 1
        else:
            by_feature.append((i, r.feature or NONE_LABEL, r.cost_usd))
            by_model.append((i, r.model_requested or NONE_LABEL, r.cost_usd))
    ordered = [sorted(values) for values in latencies]
    return {
        "bucket_s": bucket_s,
        "buckets": [start + i * bucket_s for i in range(count)],
        "calls": n_calls,
        "errors": n_errors,
        "cache_hits": n_hits,
        "unpriced_calls": unpriced,
        "cost_by_feature": _cost_series(by_feature, count),
        "cost_by_model": _cost_series(by_model, count),
        "latency_ms": {
            f"p{q}": [percentile(values, q) for values in ordered] for q in (50, 95, 99)
        },
        "cache_hit_rate": [_rate(h, n) for h, n in zip(n_hits, n_calls, strict=True)],
        "error_rate": [_rate(e, n) for e, n in zip(n_errors, n_calls, strict=True)],
    }


def top_users(stats: Sequence[GroupStats], limit: int) -> list[dict[str, Any]]:
    """Users by cost, most expensive first (then most calls); `user` None is unattributed."""
    ranked = sorted(
        stats, key=lambda s: (-s["cost_usd"], -s["calls"], s["group"] is None, s["group"] or "")
    )
    return [
        {
            "user": s["group"],
            "calls": s["calls"],
            "errors": s["errors"],
            "input_tokens": s["input_tokens"],
            "output_tokens": s["output_tokens"],
            "cost_usd": money(s["cost_usd"]),
            "unpriced_calls": s["unpriced_calls"],
            "cache_hit_rate": s["cache_hit_rate"],
            "latency_ms_p95": s["latency_ms_p95"],
        }
        for s in ranked[:limit]
    ]


def mask_key_id(key_id: str | None) -> str | None:
    """Key ids are names, not secrets; anything that looks like a whole key is cut down to
    its first and last four characters."""
    if key_id is None:
        return None
    if len(key_id) > _KEY_ID_MAX or redact(key_id) != key_id:
        return f"{key_id[:4]}…{key_id[-4:]}" if len(key_id) > 12 else "…"
    return key_id


def record_json(record: CallRecord) -> dict[str, Any]:
    """Every field of a record, money as plain decimal strings. Previews are shown as stored:
    the recorder redacted them before they were written."""
    out = record.to_json()
    for name in ("cost_usd", "cost_saved_usd"):
        value = getattr(record, name)
        out[name] = None if value is None else money(value)
    out["key_id"] = mask_key_id(record.key_id)
    return out
