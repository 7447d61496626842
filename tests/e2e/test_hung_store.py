"""A database that hangs (PostgreSQL frozen with SIGSTOP: connections open, nothing answers)
takes no calculation and no health check with it: store-bound calls have a budget of their
own, every database wait ends with the call's deadline, and store health says NOT_SERVING
within seconds (docs/operations.md, "When the database is slow, down, back")."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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

pytestmark = pytest.mark.postgres

WORKERS = 4
STUCK_CONFIRMS = 12  # three times the workers


@pytest.fixture
def cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster() as own:  # its own server: this test freezes it
        yield own


@pytest.fixture
def server(cluster: PostgresCluster, tmp_path: Path) -> Iterator[LoyaltyServer]:
    settings = demo_settings(
        tmp_path,
        database_url=cluster.create_database(),
        sync_interval_s=0.05,
        max_workers=WORKERS,
        max_store_calls=WORKERS,
        store_timeout_s=1.0,
    )
    loyalty, _port = create_server(settings)
    loyalty.start()
    try:
        yield loyalty
    finally:
        cluster.thaw()
        loyalty.stop(grace=0.5)


def until(check: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def store_health(channel: grpc.Channel) -> int:
    request = health_pb2.HealthCheckRequest(service=STORE_HEALTH)
    return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=2).status)


def demo_receipt(receipt_id: str) -> receipt_pb2.Receipt:
    made = load_receipt(register_cli.DEMO_RECEIPT)[0]
    made.receipt_id = receipt_id
    return made


def test_a_frozen_database_leaves_calculations_and_health_answering(
    cluster: PostgresCluster, server: LoyaltyServer
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        receipts = receipt_pb2_grpc.ReceiptServiceStub(channel)

        def calculate(sent: receipt_pb2.Receipt) -> receipt_pb2.CalculateResponse:
            request = receipt_pb2.CalculateRequest(receipt=sent)
            return receipts.Calculate(request, timeout=2, metadata=auth())

        shown = {n: calculate(demo_receipt(f"HUNG-{n}")) for n in range(STUCK_CONFIRMS)}
        cluster.freeze()
        try:
            stuck = [
                receipts.Confirm.future(
                    receipt_pb2.ConfirmRequest(
                        receipt=demo_receipt(f"HUNG-{n}"),
                        confirmation_token=answer.confirmation_token,
                    ),
                    timeout=1,
                    metadata=auth(),
                )
                for n, answer in shown.items()
            ]
            for n in range(3 * WORKERS):  # all while the confirms hang
                assert calculate(demo_receipt(f"HUNG-CALC-{n}")).result.total_paid > 0
                check = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=2
                )
                assert check.status == health_pb2.HealthCheckResponse.SERVING
            until(lambda: store_health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING)
            assert calculate(demo_receipt("HUNG-DEGRADED")).result.degraded
            codes = {future.exception().code() for future in stuck}  # type: ignore[union-attr]
            assert codes <= {
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
            }, codes
        finally:
            cluster.thaw()
        until(lambda: store_health(channel) == health_pb2.HealthCheckResponse.SERVING)
        assert not calculate(demo_receipt("HUNG-BACK")).result.degraded
        confirmed = receipts.Confirm(
            receipt_pb2.ConfirmRequest(
                receipt=demo_receipt("HUNG-0"), confirmation_token=shown[0].confirmation_token
            ),
            timeout=10,
            metadata=auth(),
        )
        assert confirmed.result == shown[0].result
