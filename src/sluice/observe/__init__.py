"""Observability: call records, redaction, the background record sink, the record store
and Prometheus metrics.

Wiring, once per gateway: build `Metrics()`, open a `RecordStore`, wrap it in a
`RecordSink(store, on_drop=metrics.record_dropped)` and `await sink.start()` at startup;
for every finished call build one `CallRecord`, then `metrics.observe(record)` and
`sink.emit(record)`; `await sink.close()` on shutdown; serve `metrics.render()`.
Previews go through `sluice.observe.redact.preview` (not re-exported here, so that
`sluice.observe.redact` stays the module).
"""

from sluice.observe.metrics import CONTENT_TYPE, Metrics
from sluice.observe.records import CallRecord, prompt_hash
from sluice.observe.sink import RecordSink, RecordWriter, SinkStats
from sluice.observe.store import GroupStats, RecordStore

__all__ = [
    "CONTENT_TYPE",
    "CallRecord",
    "GroupStats",
    "Metrics",
    "RecordSink",
    "RecordStore",
    "RecordWriter",
    "SinkStats",
    "prompt_hash",
]
