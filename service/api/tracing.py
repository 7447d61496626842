"""Server spans for every call, made by the call interceptor (service/api/interceptors.py).

Why not opentelemetry-instrumentation-grpc's server interceptor: it builds a new handler and a
wrapping context object on every call (our interceptor wraps each method once), and it learns
a call's status only from context.abort()/set_code(), while our error table ends calls with
abort_with_status(): every refused call would be traced as OK. So the spans are ours, with the
same name (the full method) and the same semantic-convention attributes (rpc.system,
rpc.service, rpc.method, rpc.grpc.status_code). Their parent is the W3C trace context the
register sends in its `traceparent` metadata. Only a server with tracing on wraps its
handlers with this: with tracing off no call pays for it.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.api.metrics import split_method

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from service.config import Settings

SERVICE_NAME = "loyalty-server"
Behavior = Callable[..., Any]
W3C = TraceContextTextMapPropagator()
# Codes that mark a server span as failed (OpenTelemetry's semantic conventions for gRPC):
# the others are the caller's mistakes or business answers, not faults of the server.
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
NO_TRACE = "0" * 32


def traced(tracer: Tracer, method: str, handle: Behavior, streaming: bool) -> Behavior:
    """`handle` inside a server span that is the current span while the handler runs."""
    service, name = split_method(method)
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

    def span(context: grpc.ServicerContext) -> Any:
        parent = W3C.extract(dict(context.invocation_metadata()))
        return tracer.start_as_current_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=False,  # the status says what went wrong; aborts are exceptions
            set_status_on_exception=False,
        )

    def traced_call(request: Any, context: grpc.ServicerContext) -> Any:
        with span(context):
            return handle(request, context)

    def traced_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        with span(context):
            yield from handle(request, context)

    return traced_stream if streaming else traced_call


def end_call_span(code: grpc.StatusCode) -> str:
    """Note the call's status on the current span; its trace id, for the call log."""
    span = trace.get_current_span()
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
    return trace.format_trace_id(span.get_span_context().trace_id)


def incoming_trace_id(context: grpc.ServicerContext) -> str:
    """With tracing off: the trace id of the register's traceparent, so that the call log
    still joins the register's trace; "" when it sent none (or a malformed one)."""
    for key, value in context.invocation_metadata():
        if key == "traceparent":
            found = _TRACEPARENT.fullmatch(str(value).strip())
            if found and found[1] != NO_TRACE:
                return found[1]
            return ""
    return ""


def provider_from_settings(settings: Settings) -> TracerProvider | None:
    """Spans exported over OTLP/gRPC to settings.otlp_endpoint in batches; None (tracing off)
    when it is empty. The SDK is imported only then."""
    if not settings.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create(
        {
            "service.name": SERVICE_NAME,
            "service.instance.id": f"{socket.gethostname()}-{settings.worker_name or os.getpid()}",
        }
    )
    provider = SdkTracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint)))
    return provider
