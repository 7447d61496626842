"""Metrics on their own port: calls by method and status, latency, cache and sync."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.api.server import LoyaltyServer, create_server
from tests.e2e.conftest import auth, demo_settings
from tests.pg import free_port


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoyaltyServer]:
    settings = demo_settings(tmp_path_factory.mktemp("metrics"), metrics_port=free_port())
    server, _ = create_server(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=0.5)


def scrape(server: LoyaltyServer) -> str:
    url = f"http://127.0.0.1:{server.settings.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())


def test_calls_are_counted_by_method_and_status(metered: LoyaltyServer) -> None:
    request = receipt_pb2.CalculateRequest()
    receipt = request.receipt
    receipt.receipt_id, receipt.store_id, receipt.channel = "M-1", "S001", 1
    receipt.lines.add(line_id="1", sku="X", quantity=1000, price=100, amount=100)
    with grpc.insecure_channel(f"127.0.0.1:{metered.port}") as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
        stub.Calculate(request, timeout=5, metadata=auth())
        with pytest.raises(grpc.RpcError):
            stub.Calculate(request, timeout=5)  # no credential
    text = scrape(metered)
    method = "/loyalty.v1.ReceiptService/Calculate"
    assert f'loyalty_calls_total{{code="OK",method="{method}"}} 1.0' in text
    assert f'loyalty_calls_total{{code="UNAUTHENTICATED",method="{method}"}} 1.0' in text
    assert "loyalty_call_seconds_bucket" in text
    assert "loyalty_cache_member_misses_total" in text
    assert "loyalty_sync_open_gaps 0.0" in text
