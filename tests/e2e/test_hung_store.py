"""A database that hangs (PostgreSQL frozen with SIGSTOP: connections open, nothing answers)
takes no calculation and no health check with it: store-bound calls have a budget of their
own, every database wait ends with the call's deadline, and store health says NOT_SERVING
within seconds (docs/operations.md, "When the database is slow, down, back")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
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

WORKERS = 4
STUCK_CONFIRMS = 24  # more than every thread of the server (workers and budgets)
# Confirms wait far longer than a calculation may take: without budgets of their own they
# would hold every worker that long.
CONFIRM_DEADLINE_S = 5.0
CALCULATE_DEADLINE_S = 1.0


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
            return receipts.Calculate(request, timeout=CALCULATE_DEADLINE_S, metadata=auth())

        shown = {n: calculate(demo_receipt(f"HUNG-{n}")) for n in range(STUCK_CONFIRMS)}
        cluster.freeze()
        try:
            stuck = [
                receipts.Confirm.future(
                    receipt_pb2.ConfirmRequest(
                        receipt=demo_receipt(f"HUNG-{n}"),
                        confirmation_token=answer.confirmation_token,
                    ),
                    timeout=CONFIRM_DEADLINE_S,
                    metadata=auth(),
                )
                for n, answer in shown.items()
            ]
            for n in range(3 * WORKERS):  # all while the confirms hang
                assert calculate(demo_receipt(f"HUNG-CALC-{n}")).result.total_paid > 0
                check = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=CALCULATE_DEADLINE_S
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


def test_confirms_blocked_on_a_row_lock_leave_calculations_their_workers(
    cluster: PostgresCluster, server: LoyaltyServer
) -> None:
    """The database answers, but a member row is locked by another transaction: the confirms
    of that member wait for it, Calculate does not."""
    shown_receipts = {n: demo_receipt(f"LOCKED-{n}") for n in range(STUCK_CONFIRMS)}
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        receipts = receipt_pb2_grpc.ReceiptServiceStub(channel)
        shown = {
            n: receipts.Calculate(
                receipt_pb2.CalculateRequest(receipt=sent), timeout=5, metadata=auth()
            )
            for n, sent in shown_receipts.items()
        }
        member_id = shown[0].result.member_id
        url = server.settings.database_url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(url, autocommit=False) as locker:
            locker.execute("SELECT id FROM members WHERE id = %s FOR UPDATE", (member_id,))
            stuck = [
                receipts.Confirm.future(
                    receipt_pb2.ConfirmRequest(
                        receipt=shown_receipts[n], confirmation_token=answer.confirmation_token
                    ),
                    timeout=CONFIRM_DEADLINE_S,
                    metadata=auth(),
                )
                for n, answer in shown.items()
            ]
            for n in range(3 * WORKERS):
                request = receipt_pb2.CalculateRequest(receipt=demo_receipt(f"LOCKED-CALC-{n}"))
                answer = receipts.Calculate(request, timeout=CALCULATE_DEADLINE_S, metadata=auth())
                assert not answer.result.degraded  # the database answers
            locker.rollback()
        codes = [future.code() for future in stuck]
        assert grpc.StatusCode.UNAVAILABLE in codes  # beyond the budget: refused at once
        assert set(codes) <= {
            grpc.StatusCode.OK,  # waited for the lock, then committed
            grpc.StatusCode.FAILED_PRECONDITION,  # the member's limited offer is used up
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        }, codes
