"""Tracing: a server span per call, its parent the register's W3C traceparent, the store's
statements as child spans, the trace id in the call log; spans caught in memory."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.api.server import LoyaltyServer, create_server
from tests.e2e.conftest import auth, demo_settings
from tests.waiting import until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = ("traceparent", f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01")
CALCULATE = "/loyalty.v1.ReceiptService/Calculate"
CONFIRM = "/loyalty.v1.ReceiptService/Confirm"


@pytest.fixture(scope="module")
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def traced(
    tmp_path_factory: pytest.TempPathFactory, exporter: InMemorySpanExporter
) -> Iterator[LoyaltyServer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server, _ = create_server(
        demo_settings(tmp_path_factory.mktemp("traced")), tracer_provider=provider
    )
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=0.5)
        provider.shutdown()


@pytest.fixture
def stub(traced: LoyaltyServer) -> Iterator[receipt_pb2_grpc.ReceiptServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{traced.port}") as channel:
        yield receipt_pb2_grpc.ReceiptServiceStub(channel)


def server_spans(exporter: InMemorySpanExporter, method: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == method]


def one_server_span(exporter: InMemorySpanExporter, method: str) -> ReadableSpan:
    until(lambda: server_spans(exporter, method), what=f"a span of {method}")
    [span] = server_spans(exporter, method)
    return span


def demo_receipt(receipt_id: str) -> receipt_pb2.Receipt:
    receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
    receipt.receipt_id = receipt_id
    return receipt


def test_a_call_span_is_a_child_of_the_registers_traceparent_and_in_the_call_log(
    stub: receipt_pb2_grpc.ReceiptServiceStub,
    exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    exporter.clear()
    request = receipt_pb2.CalculateRequest(receipt=demo_receipt("TRACED-1"))
    with caplog.at_level(logging.INFO, logger="service.calls"):
        stub.Calculate(request, timeout=10, metadata=(*auth(), TRACEPARENT))
        until(lambda: [r for r in caplog.records if r.name == "service.calls"])
    span = one_server_span(exporter, CALCULATE)
    assert span.kind is SpanKind.SERVER
    assert format_trace_id(span.context.trace_id) == TRACE_ID
    assert span.parent is not None and span.parent.is_remote
    assert format_span_id(span.parent.span_id) == PARENT_SPAN_ID
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "loyalty.v1.ReceiptService",
        "rpc.method": "Calculate",
        "rpc.grpc.status_code": 0,
    }
    assert span.status.status_code is StatusCode.UNSET
    [line] = [r for r in caplog.records if r.name == "service.calls"]
    assert line.trace_id == TRACE_ID  # type: ignore[attr-defined]


def test_a_confirm_has_the_stores_statements_as_child_spans(
    stub: receipt_pb2_grpc.ReceiptServiceStub, exporter: InMemorySpanExporter
) -> None:
    receipt = demo_receipt("TRACED-2")
    shown = stub.Calculate(
        receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth()
    )
    exporter.clear()
    confirm = receipt_pb2.ConfirmRequest(
        receipt=receipt, confirmation_token=shown.confirmation_token
    )
    stub.Confirm(confirm, timeout=10, metadata=(*auth(), TRACEPARENT))
    call = one_server_span(exporter, CONFIRM)
    assert format_trace_id(call.context.trace_id) == TRACE_ID
    children = [
        s
        for s in exporter.get_finished_spans()
        if s.parent is not None and s.parent.span_id == call.context.span_id
    ]
    statements = [s for s in children if s.kind is SpanKind.CLIENT]
    assert statements, "the confirm's statements are spans under its call span"
    assert all(s.attributes and s.attributes.get("db.system") == "sqlite" for s in statements)
    assert any(s.name.startswith("INSERT") for s in statements)


def test_a_call_without_traceparent_starts_a_trace_and_a_refusal_is_no_server_error(
    stub: receipt_pb2_grpc.ReceiptServiceStub, exporter: InMemorySpanExporter
) -> None:
    exporter.clear()
    request = receipt_pb2.CalculateRequest(receipt=demo_receipt("TRACED-3"))
    with pytest.raises(grpc.RpcError) as refused:
        stub.Calculate(request, timeout=10)  # no credential
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    span = one_server_span(exporter, CALCULATE)
    assert span.parent is None
    assert span.attributes and span.attributes["rpc.grpc.status_code"] == 16
    assert span.status.status_code is StatusCode.UNSET  # the caller's mistake, not a fault


def test_statements_outside_calls_make_no_traces(
    traced: LoyaltyServer, exporter: InMemorySpanExporter
) -> None:
    """The change follower polls the store ten times a second: no trace for each poll."""
    exporter.clear()
    polled = traced.follower.stats.polls
    until(lambda: traced.follower.stats.polls >= polled + 3, what="three more polls")
    assert exporter.get_finished_spans() == ()


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace collector that keeps what it is sent."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str]] = []  # (service.name, span name)

    def Export(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    self.spans.append((attributes.get("service.name", ""), span.name))
        return trace_service_pb2.ExportTraceServiceResponse()


def test_with_an_otlp_endpoint_spans_reach_the_collector(tmp_path: Path) -> None:
    collector = Collector()
    collector_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, collector_server)
    collector_port = collector_server.add_insecure_port("127.0.0.1:0")
    collector_server.start()
    try:
        settings = demo_settings(tmp_path, otlp_endpoint=f"http://127.0.0.1:{collector_port}")
        server, port = create_server(settings)
        server.start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                request = receipt_pb2.CalculateRequest(receipt=demo_receipt("EXPORTED-1"))
                receipt_pb2_grpc.ReceiptServiceStub(channel).Calculate(
                    request, timeout=10, metadata=auth()
                )
        finally:
            server.stop(grace=0.5)  # flushes the batch of spans
        assert ("loyalty-server", CALCULATE) in collector.spans
    finally:
        collector_server.stop(0)


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        f"00-{'0' * 32}-{PARENT_SPAN_ID}-01",  # the all-zero trace id is invalid
        f"00-{TRACE_ID.upper()}-{PARENT_SPAN_ID}-01",
        "00-" + "f" * 4000,
    ],
)
def test_a_malformed_traceparent_is_ignored_and_the_call_served(
    stub: receipt_pb2_grpc.ReceiptServiceStub, exporter: InMemorySpanExporter, traceparent: str
) -> None:
    exporter.clear()
    request = receipt_pb2.CalculateRequest(receipt=demo_receipt("TRACED-BAD"))
    stub.Calculate(request, timeout=10, metadata=(*auth(), ("traceparent", traceparent)))
    span = one_server_span(exporter, CALCULATE)
    assert span.parent is None  # a trace of its own
    assert span.attributes and span.attributes["rpc.grpc.status_code"] == 0
