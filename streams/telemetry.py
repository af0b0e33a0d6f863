"""The one telemetry setup: W3C trace context on every Kafka hop, spans exported per OTEL_*.

Exporters come from the standard `OTEL_TRACES_EXPORTER` (comma list of `otlp`, `console`,
`none`); OTLP goes over HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` / `..._TRACES_ENDPOINT`, as
the SDK reads them. Unlike the SDK's own default, no exporter is the default here, so
a stage does not try to reach a collector that is not there. Trace context propagates
either way, so `trace_id` in every result is real.

One study is one trace: the publisher starts every instance of a study under one
study span, and each stage opens a consumer span (child of, and linked to, the
producer's span) and a producer span for what it emits.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags

Headers = list[tuple[str, bytes | None]]
_provider: TracerProvider | None = None


def setup_tracing(service: str) -> TracerProvider:
    """Install the tracer provider once per process, with the exporters OTEL_* asks for."""
    global _provider
    if _provider is not None:
        return _provider
    name = os.environ.get("OTEL_SERVICE_NAME", f"radstream-{service}")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    for exporter in (e.strip() for e in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")):
        if exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=500))
        elif exporter == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif exporter not in ("none", ""):
            raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {exporter!r} (otlp, console or none)")
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def shutdown() -> None:
    """Flush pending spans (called on graceful stop)."""
    if _provider is not None:
        _provider.shutdown()


def tracer() -> trace.Tracer:
    return trace.get_tracer("radstream")


class _HeaderGetter:
    def get(self, carrier: Headers, key: str) -> list[str] | None:
        values = [v.decode() for k, v in carrier if k == key and v is not None]
        return values or None

    def keys(self, carrier: Headers) -> list[str]:
        return [k for k, _ in carrier]


class _HeaderSetter:
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key] + [(key, value.encode())]


def context_from(headers: Sequence[tuple[str, bytes | None]] | None) -> Context:
    return extract(list(headers or []), getter=_HeaderGetter())


def trace_headers(context: Context | None = None) -> Headers:
    """`traceparent`/`tracestate` headers for the current (or given) span context."""
    carrier: Headers = []
    inject(carrier, context=context, setter=_HeaderSetter())
    return carrier


@functools.cache
def _trace_key() -> bytes:
    from radstream.streams.config import trace_key  # the one config reader

    return trace_key()


def study_context(study_uid: str, key: bytes | None = None) -> Context:
    """A remote parent whose trace id is derived from the Study Instance UID: every sender
    (publish, the DICOM receiver) puts all instances of a study in the same trace.

    HMAC-SHA256 under the deployment's trace key (RADSTREAM_TRACE_KEY, see streams/config.py), not
    a bare hash: anyone who sees a trace id could otherwise test guessed or known Study UIDs against it.
    """
    digest = hmac.new(_trace_key() if key is None else key, study_uid.encode(), hashlib.sha256).digest()
    span_context = SpanContext(int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1,
                               is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def start_consumer_span(stage: str, topic: str, headers: Sequence[tuple[str, bytes | None]] | None) -> trace.Span:
    """The span of one message's processing: child of the producer's span, and linked to it.
    The caller ends it (after the commit), since a batch holds several at once."""
    parent = context_from(headers)
    parent_span = trace.get_current_span(parent).get_span_context()
    links = [Link(parent_span)] if parent_span.is_valid else []
    return tracer().start_span(f"{stage} process {topic}", context=parent, kind=SpanKind.CONSUMER, links=links,
                               attributes={"messaging.system": "kafka", "messaging.source.name": topic})


def span_context(span: trace.Span) -> Context:
    return trace.set_span_in_context(span)


def producer_headers(stage: str, topic: str, parent: Context | None = None) -> Headers:
    """Open and close a producer span for one output; return the headers that carry it."""
    with tracer().start_as_current_span(f"{stage} send {topic}", context=parent, kind=SpanKind.PRODUCER,
                                        attributes={"messaging.system": "kafka",
                                                    "messaging.destination.name": topic}):
        return trace_headers()


def trace_id_hex(context: Context | None = None) -> str:
    return format(trace.get_current_span(context).get_span_context().trace_id, "032x")
