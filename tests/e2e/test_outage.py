"""The store goes down during calculations and comes back: cached members keep being served
(and the answer says so), writes fail with UNAVAILABLE and change nothing, and the service
recovers without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.api.server import STORE_HEALTH, LoyaltyServer, create_server
from tests.e2e.conftest import auth, demo_settings
from tests.pg import PostgresCluster
from tests.waiting import until

pytestmark = pytest.mark.postgres


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as own:  # its own server: this test stops it
        yield own


@pytest.fixture
def server(cluster: PostgresCluster, tmp_path: Path) -> Iterator[LoyaltyServer]:
    settings = demo_settings(tmp_path, database_url=cluster.create_database(), sync_interval_s=0.05)
    loyalty, _port = create_server(settings)
    loyalty.start()
    try:
        yield loyalty
    finally:
        loyalty.stop(grace=0.5)


def store_health(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest(service=STORE_HEALTH)
    return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status)


def test_calculations_survive_a_store_outage_and_writes_wait_for_its_return(
    cluster: PostgresCluster, server: LoyaltyServer
) -> None:
    receipt, _ = load_receipt(register_cli.DEMO_RECEIPT)
    receipt.receipt_id = "OUTAGE-1"
    serving = health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)

        def calculate() -> receipt_pb2.CalculateResponse:
            request = receipt_pb2.CalculateRequest(receipt=receipt)
            return stub.Calculate(request, timeout=10, metadata=auth())

        before = calculate()  # loads the member into the cache
        assert not before.result.degraded

        cluster.stop_server()
        until(lambda: not server.follower.store_available)
        during = calculate()
        assert during.result.degraded
        assert during.result.total_discount == before.result.total_discount
        assert store_health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        confirm = receipt_pb2.ConfirmRequest(
            receipt=receipt, confirmation_token=during.confirmation_token
        )
        with pytest.raises(grpc.RpcError) as refused:
            stub.Confirm(confirm, timeout=10, metadata=auth())
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

        cluster.restart_server()
        until(lambda: server.follower.store_available)
        after = calculate()
        assert not after.result.degraded
        assert store_health(channel) == serving
        confirmed = stub.Confirm(
            receipt_pb2.ConfirmRequest(
                receipt=receipt, confirmation_token=after.confirmation_token
            ),
            timeout=10,
            metadata=auth(),
        )
        assert not confirmed.replayed, "the refused confirm wrote nothing"
        assert confirmed.result.total_paid == after.result.total_paid


def test_a_member_whose_last_receipt_was_confirmed_is_served_by_card_in_an_outage(
    cluster: PostgresCluster, server: LoyaltyServer
) -> None:
    """A confirm changes the member: every replica refreshes them rather than dropping them,
    so the last state this replica knew still answers when the store goes down."""
    receipt, _ = load_receipt(register_cli.DEMO_RECEIPT)
    receipt.receipt_id = "OUTAGE-2"
    assert receipt.member.card_number, "the demo receipt names its member by card"
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)

        def calculate() -> receipt_pb2.CalculateResponse:
            request = receipt_pb2.CalculateRequest(receipt=receipt)
            return stub.Calculate(request, timeout=10, metadata=auth())

        before = calculate()
        confirm = receipt_pb2.ConfirmRequest(
            receipt=receipt, confirmation_token=before.confirmation_token
        )
        assert not stub.Confirm(confirm, timeout=10, metadata=auth()).replayed

        cluster.stop_server()
        until(lambda: not server.follower.store_available)
        during = calculate()
        assert during.result.degraded
        assert during.result.member_id == before.result.member_id
