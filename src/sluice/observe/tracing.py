"""OpenTelemetry tracing, off by default.

When on: a span per request (continuing the caller's W3C `traceparent` if it sent one), a
child span per pipeline stage and per upstream attempt, and the attempt's `traceparent`
sent upstream so the provider's spans (or logs) join the same trace. Spans are exported
with OTLP over HTTP when `otlp_endpoint` is set. When off, none of this runs: no
OpenTelemetry import, no span objects, nothing on the hot path.

The tracer provider is this gateway's own (never the process-global one), so several
gateways in one process do not share exporters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer


class TracingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    otlp_endpoint: str | None = None  # e.g. http://otel-collector:4318/v1/traces
    service_name: str = "sluice"
    sample_ratio: float = Field(default=1.0, ge=0, le=1)  # of traces not sampled upstream


class Tracing:
    """Builds spans for one gateway; `enabled` is False when tracing is off."""

    def __init__(self, config: TracingConfig, exporter: SpanExporter | None = None) -> None:
        self.enabled = config.enabled
        self._provider: TracerProvider | None = None
        self._tracer: Tracer | None = None
        if self.enabled:
            try:
                self._provider, self._tracer = _build(config, exporter)
            except ImportError as exc:
                raise RuntimeError(
                    "observability.tracing.enabled needs OpenTelemetry: pip install 'sluice[otel]'"
                ) from exc

    @contextmanager
    def request_span(self, name: str, headers: Mapping[str, str]) -> Iterator[Span | None]:
        """The request's span, continuing an incoming `traceparent`."""
        if self._tracer is None:
            yield None
            return
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent = TraceContextTextMapPropagator().extract(dict(headers))
        with self._tracer.start_as_current_span(name, context=parent, kind=_server()) as span:
            yield span

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Span | None]:
        """A child of the current span (a stage, an upstream attempt)."""
        if self._tracer is None:
            yield None
            return
        with self._tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span

    @staticmethod
    def traceparent() -> str | None:
        """The current span as a W3C `traceparent` header value, to send upstream."""
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        return carrier.get("traceparent")

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def _server() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.SERVER


def _build(config: TracingConfig, exporter: SpanExporter | None) -> tuple[TracerProvider, Tracer]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": config.service_name}),
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
    )
    if exporter is not None:  # tests hand in an in-memory exporter
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif config.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # Batched and exported from the SDK's own thread: never on the request path.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(config.otlp_endpoint)))
    return provider, provider.get_tracer("sluice")
