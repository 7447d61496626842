"""Limits that keep the service running: oversized messages, calls in flight, and the call
log that says what happened without saying any secret."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import grpc
import pytest
from sqlalchemy import func, select

from loyalty.v1 import notification_pb2, notification_pb2_grpc, receipt_pb2, receipt_pb2_grpc
from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer, create_server
from service.logs import formatter
from service.store import db
from service.store.models import RefundRow
from tests.e2e.conftest import auth, demo_settings
from tests.waiting import until


def small_receipt(receipt_id: str = "LIMIT-1") -> receipt_pb2.CalculateRequest:
    request = receipt_pb2.CalculateRequest()
    receipt = request.receipt
    receipt.receipt_id, receipt.store_id, receipt.channel = receipt_id, "S001", 1
    receipt.lines.add(line_id="1", sku="X", quantity=1000, price=100, amount=100)
    return request


def test_an_oversized_message_is_resource_exhausted_before_any_handler(
    channel: grpc.Channel,
) -> None:
    request = small_receipt()
    request.receipt.lines[0].sku = "X" * (5 * 1024 * 1024)  # above the 4 MiB limit
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Calculate(request, timeout=10, metadata=auth())
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_calls_beyond_the_limit_in_flight_are_refused_at_once(tmp_path: Path) -> None:
    server, port = create_server(demo_settings(tmp_path, max_concurrent_calls=2))
    server.start()
    streams: list[grpc.Future] = []  # type: ignore[type-arg]
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            events = notification_pb2_grpc.NotificationServiceStub(channel)
            for _ in range(2):  # two event streams stay open: the limit is reached
                stream = events.StreamMemberEvents(
                    notification_pb2.StreamMemberEventsRequest(),
                    timeout=20, metadata=auth(Role.CUSTOMER_SERVICES),
                )  # fmt: skip
                streams.append(stream)
            until(lambda: server.notifications.open_streams == 2, what="both streams open")
            stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as caught:
                stub.Calculate(small_receipt(), timeout=10, metadata=auth())
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert time.monotonic() - started < 2, "refused at once, not queued"
            for stream in streams:
                stream.cancel()
    finally:
        server.stop(grace=0.5)


def test_each_call_logs_one_json_line_without_the_secret(
    demo_server: LoyaltyServer, channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    with caplog.at_level(logging.INFO, logger="service.calls"):
        stub.Calculate(small_receipt("LOG-1"), timeout=10, metadata=auth())
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            threading.Event().wait(0.02)
    as_json = formatter("json")
    lines = [json.loads(as_json.format(r)) for r in caplog.records if r.name == "service.calls"]
    assert lines, "a call log line was written"
    line = lines[-1]
    assert line["method"] == "/loyalty.v1.ReceiptService/Calculate"
    assert line["code"] == "OK"
    assert line["caller"] == "dev-register"
    assert line["store"] == "S001"
    assert line["duration_ms"] > 0
    assert line["receipt_id"] == "LOG-1"
    assert line["peer"].startswith("ipv4:127.0.0.1:")
    secret = DEV_TOKENS[Role.REGISTER].split(".")[1]
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_a_megabyte_store_id_is_refused_by_name_and_logged_as_a_short_prefix(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    request = small_receipt("LOG-LONG")
    request.receipt.store_id = "S" * 2**20
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    with caplog.at_level(logging.INFO, logger="service.calls"):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Calculate(request, timeout=10, metadata=auth())
        deadline = time.monotonic() + 5
        while not caplog.records and time.monotonic() < deadline:
            threading.Event().wait(0.02)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(caught.value.details() or "") < 300
    as_json = formatter("json")
    lines = [as_json.format(r) for r in caplog.records if r.name == "service.calls"]
    assert lines and all(len(line) < 400 for line in lines)


def test_a_megabyte_refund_id_is_refused_and_not_stored(
    demo_server: LoyaltyServer, channel: grpc.Channel
) -> None:
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    sale = small_receipt("LIMIT-REFUND")
    token = stub.Calculate(sale, timeout=10, metadata=auth()).confirmation_token
    confirm = receipt_pb2.ConfirmRequest(receipt=sale.receipt, confirmation_token=token)
    stub.Confirm(confirm, timeout=10, metadata=auth())
    refund = receipt_pb2.RefundRequest(
        refund_id="F" * 2**20, receipt_id="LIMIT-REFUND", full=True, store_id="S001"
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.Refund(refund, timeout=10, metadata=auth())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(caught.value.details() or "") < 300
    with db.make_session_factory(demo_server.store)() as session:
        assert session.scalar(select(func.count()).select_from(RefundRow)) == 0
