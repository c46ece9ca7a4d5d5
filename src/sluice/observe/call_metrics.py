"""Per-call Prometheus series kept as plain Python numbers, turned into metric families only
when `/metrics` is scraped.

Why: prometheus_client's counters and histograms take a lock and a few Python calls per
update; a call updates about eight of them, which cost ~11 µs per request (measured). Here a
call costs a few dict and list operations (~2 µs) and the work moves to the scrape, which
happens every few seconds instead of thousands of times a second. Only the event loop's
thread updates these numbers; a scrape from another thread may read a call half-counted,
which Prometheus tolerates (the next scrape is exact).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from sluice.observe.records import CallRecord

_RETRIES = "Upstream attempts beyond the first."
_FALLBACKS = "Calls that fell back to another deployment."
_LATENCY = "Time from request to the end of the answer."
_TTFT = "Time from request to the first byte of the answer."


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last one is +Inf
        self.sum = 0.0


class _Pair:
    """Totals for one (route, deployment)."""

    __slots__ = (
        "by_status",
        "cache_read",
        "cache_write",
        "cost",
        "fallbacks",
        "input",
        "output",
        "retries",
    )

    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}
        self.input = self.output = self.cache_read = self.cache_write = 0
        self.cost = 0.0
        self.retries = self.fallbacks = 0


class CallTotals(Collector):
    """What finished calls add up to, by route and deployment (labels already bounded)."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self._bounds = tuple(buckets)
        self._pairs: dict[tuple[str, str], _Pair] = {}
        self._latency: dict[str, _Histogram] = {}
        self._ttft: dict[str, _Histogram] = {}

    def add(self, route: str, deployment: str, record: CallRecord) -> None:
        pair = self._pairs.get((route, deployment))
        if pair is None:
            pair = self._pairs[(route, deployment)] = _Pair()
        pair.by_status[record.status] = pair.by_status.get(record.status, 0) + 1
        pair.input += record.input_tokens
        pair.output += record.output_tokens
        pair.cache_read += record.cache_read_tokens
        pair.cache_write += record.cache_write_tokens
        if record.cost_usd:
            pair.cost += float(record.cost_usd)
        if record.attempts > 1:
            pair.retries += record.attempts - 1
        if record.fallback_triggered:
            pair.fallbacks += 1
        self._observe(self._latency, route, record.latency_ms / 1000)
        if record.ttft_ms is not None:
            self._observe(self._ttft, route, record.ttft_ms / 1000)

    def prompt_cache_ratios(self) -> dict[str, float]:
        """Per deployment: cache-read tokens / (read + write), where there were any."""
        totals: dict[str, list[int]] = {}
        for (_, deployment), pair in self._pairs.items():
            if pair.cache_read or pair.cache_write:
                t = totals.setdefault(deployment, [0, 0])
                t[0] += pair.cache_read
                t[1] += pair.cache_write
        return {dep: read / (read + write) for dep, (read, write) in totals.items()}

    def _observe(self, table: dict[str, _Histogram], route: str, seconds: float) -> None:
        hist = table.get(route)
        if hist is None:
            hist = table[route] = _Histogram(len(self._bounds))
        hist.counts[bisect_left(self._bounds, seconds)] += 1
        hist.sum += seconds

    # --- scrape ------------------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        pairs = list(self._pairs.items())
        requests = CounterMetricFamily(
            "sluice_requests",
            "Calls answered, by route, serving deployment and HTTP status.",
            labels=["route", "deployment", "status"],
        )
        tokens = CounterMetricFamily(
            "sluice_tokens",
            "Tokens by type (input counts all prompt tokens, cache reads and writes included).",
            labels=["route", "deployment", "type"],
        )
        cost = CounterMetricFamily(
            "sluice_cost_usd", "Spend in USD at list price.", labels=["route", "deployment"]
        )
        retries: dict[str, int] = {}
        fallbacks: dict[str, int] = {}
        for (route, dep), pair in pairs:
            for status, count in list(pair.by_status.items()):
                requests.add_metric([route, dep, str(status)], count)
            tokens.add_metric([route, dep, "input"], pair.input)
            tokens.add_metric([route, dep, "output"], pair.output)
            if pair.cache_read or pair.cache_write:
                tokens.add_metric([route, dep, "cache_read"], pair.cache_read)
                tokens.add_metric([route, dep, "cache_write"], pair.cache_write)
            cost.add_metric([route, dep], pair.cost)
            retries[dep] = retries.get(dep, 0) + pair.retries
            fallbacks[route] = fallbacks.get(route, 0) + pair.fallbacks
        yield requests
        yield tokens
        yield cost
        yield _counter(
            "sluice_retries", "Upstream attempts beyond the first.", "deployment", retries
        )
        yield _counter(
            "sluice_fallbacks", "Calls that fell back to another deployment.", "route", fallbacks
        )
        yield self._histogram(
            "sluice_request_latency_seconds",
            "Time from request to the end of the answer.",
            self._latency,
        )
        yield self._histogram(
            "sluice_ttft_seconds", "Time from request to the first byte of the answer.", self._ttft
        )

    def _histogram(self, name: str, doc: str, table: dict[str, _Histogram]) -> Metric:
        family = HistogramMetricFamily(name, doc, labels=["route"])
        for route, hist in list(table.items()):
            running, buckets = 0, []
            for bound, count in zip((*self._bounds, float("inf")), hist.counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), running))
            family.add_metric([route], buckets, hist.sum)
        return family


def _counter(name: str, doc: str, label: str, values: dict[str, int]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=[label])
    for value, count in values.items():
        family.add_metric([value], count)
    return family
