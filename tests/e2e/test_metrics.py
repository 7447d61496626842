"""Metrics on their own port, under the names every gRPC dashboard knows (go-grpc-prometheus,
py-grpc-prometheus), with the service's own cache and sync metrics beside them."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.api.server import LoyaltyServer, create_server
from tests.e2e.conftest import auth, demo_settings
from tests.pg import free_port
from tests.waiting import until

CALCULATE = {"grpc_type": "unary", "grpc_service": "loyalty.v1.ReceiptService"} | {
    "grpc_method": "Calculate"
}
SERIES = re.compile(r"^(\w+)\{(.*)\} (\S+)$", re.MULTILINE)
LABEL = re.compile(r'(\w+)="([^"]*)"')


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoyaltyServer]:
    settings = demo_settings(tmp_path_factory.mktemp("metrics"), metrics_port=free_port())
    server, _ = create_server(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=0.5)


def scrape_port(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def scrape(server: LoyaltyServer) -> str:
    return scrape_port(server.settings.metrics_port)


def sample(text: str, name: str, labels: dict[str, str], **more: str) -> float | None:
    """The value of the series `name` with exactly these labels; None if there is none."""
    wanted = labels | more
    for series, label_text, value in SERIES.findall(text):
        if series == name and dict(LABEL.findall(label_text)) == wanted:
            return float(value)
    return None


def calculate_request() -> receipt_pb2.CalculateRequest:
    request = receipt_pb2.CalculateRequest()
    receipt = request.receipt
    receipt.receipt_id, receipt.store_id, receipt.channel = "M-1", "S001", 1
    receipt.lines.add(line_id="1", sku="X", quantity=1000, price=100, amount=100)
    return request


def test_unary_calls_are_counted_under_the_standard_names_and_labels(
    metered: LoyaltyServer,
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{metered.port}") as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
        stub.Calculate(calculate_request(), timeout=5, metadata=auth())
        with pytest.raises(grpc.RpcError):
            stub.Calculate(calculate_request(), timeout=5)  # no credential
    text = scrape(metered)
    assert sample(text, "grpc_server_started_total", CALCULATE) == 2
    assert sample(text, "grpc_server_handled_total", CALCULATE, grpc_code="OK") == 1
    refused = sample(text, "grpc_server_handled_total", CALCULATE, grpc_code="UNAUTHENTICATED")
    assert refused == 1
    assert sample(text, "grpc_server_msg_received_total", CALCULATE) == 2
    assert sample(text, "grpc_server_msg_sent_total", CALCULATE) == 1  # the refusal sent none
    assert sample(text, "grpc_server_handling_seconds_count", CALCULATE) == 2
    assert sample(text, "grpc_server_handling_seconds_bucket", CALCULATE, le="+Inf") == 2
    assert "grpc_server_handling_seconds_bucket" in text
    assert "loyalty_calls_total" not in text and "loyalty_call_seconds" not in text


def test_a_server_stream_is_counted_as_one_with_each_message_sent(metered: LoyaltyServer) -> None:
    watch = {"grpc_type": "server_stream", "grpc_service": "grpc.health.v1.Health"} | {
        "grpc_method": "Watch"
    }
    with grpc.insecure_channel(f"127.0.0.1:{metered.port}") as channel:
        stream = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        stream.cancel()

    def watch_ended() -> bool:
        cancelled = sample(
            scrape(metered), "grpc_server_handled_total", watch, grpc_code="CANCELLED"
        )
        return cancelled is not None

    until(watch_ended, what="the cancelled Watch counted as handled")
    text = scrape(metered)
    assert sample(text, "grpc_server_started_total", watch) == 1
    assert sample(text, "grpc_server_msg_received_total", watch) == 1
    assert sample(text, "grpc_server_msg_sent_total", watch) == 1


def test_every_metric_says_what_it_measures(metered: LoyaltyServer) -> None:
    text = scrape(metered)
    helps = dict(line.split(" ", 3)[2:] for line in text.splitlines() if line.startswith("# HELP "))
    for name in (
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds",
        "grpc_server_msg_received_total",
        "grpc_server_msg_sent_total",
        "loyalty_cache_member_misses_total",
        "loyalty_cache_members",
        "loyalty_sync_open_gaps",
        "loyalty_sync_seconds_since_success",
        "loyalty_sync_delay_seconds",
        "loyalty_store_errors_total",
    ):
        assert name in helps, name
        words = helps[name].split()
        assert len(words) >= 4 and helps[name] != name.replace("_", " "), (name, helps[name])
    assert "loyalty_sync_open_gaps 0.0" in text
