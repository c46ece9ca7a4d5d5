"""Observability: call records, redaction, the background record sink, the record store
and Prometheus metrics.

Wiring, once per gateway: build `Metrics()`, open a `RecordStore`, wrap it in a
`RecordSink(store, on_drop=metrics.record_dropped)` and `await sink.start()` at startup;
for every finished call build one `CallRecord`, then `metrics.observe(record)` and
`sink.emit(record)`; `await sink.close()` on shutdown; serve `metrics.render()`.
Import from the submodules (`sluice.observe.metrics`, `.records`, `.sink`, `.store`,
`.redact`, `.tracing`). Previews go through `sluice.observe.redact.preview`.
"""

# No re-exports: importing the package must stay cheap (the config imports
# `sluice.observe.tracing`), and the store pulls in SQLAlchemy.
