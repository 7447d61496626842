"""Tracing: a server span per call, its parent the register's W3C traceparent, the store's
statements as child spans, the trace id in the call log; spans caught in memory."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest
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
