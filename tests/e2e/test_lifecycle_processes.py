"""Two server processes on one database, as two replicas behind a load balancer: a receipt
calculated on one is confirmed on the other, once, and refunded on either."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
import pytest

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from tests.e2e.conftest import auth


@contextmanager
def server_process(
    database_url: str, secret: str, settings: dict[str, str] | None = None
) -> Iterator[receipt_pb2_grpc.ReceiptServiceStub]:
    """`python -m service.main` with the demo data (and LOYALTY_* `settings`); stopped with
    SIGTERM at the end."""
    env = {
        **os.environ,
        "LOYALTY_TOKEN_SECRET": secret,
        "LOYALTY_TIME_ZONE": "Europe/Moscow",
        "LOYALTY_LOG_LEVEL": "WARNING",
        **(settings or {}),
    }
    command = [
        sys.executable, "-m", "service.main",
        "--address", "127.0.0.1:0",
        "--database-url", database_url,
        "--demo-data", "on",
        "--processes", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("loyalty server listening on"), line
        port = int(line.strip().rsplit(":", 1)[1])
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield receipt_pb2_grpc.ReceiptServiceStub(channel)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One empty database both processes use: an SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_a_receipt_calculated_on_one_process_is_confirmed_once_on_the_other(
    shared_database: str,
) -> None:
    url = shared_database
    with ExitStack() as stack:
        # one after the other: the first migrates and loads the demo data, the second finds it
        first = stack.enter_context(server_process(url, "shared-secret"))
        second = stack.enter_context(server_process(url, "shared-secret"))
        receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
        receipt.receipt_id = "TWO-PROCESSES-1"

        shown = first.Calculate(
            receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth()
        )
        request = receipt_pb2.ConfirmRequest(
            receipt=receipt, confirmation_token=shown.confirmation_token
        )
        on_second = second.Confirm(request, timeout=10, metadata=auth())
        on_first = first.Confirm(request, timeout=10, metadata=auth())

        assert not on_second.replayed and on_first.replayed
        assert on_second.result == on_first.result == shown.result
        assert on_first.points_balance == on_second.points_balance == shown.result.total_points

        refund = receipt_pb2.RefundRequest(
            refund_id="TWO-PROCESSES-F1", receipt_id=receipt.receipt_id, full=True
        )
        refund.store_id = receipt.store_id
        given = first.Refund(refund, timeout=10, metadata=auth())
        repeated = second.Refund(refund, timeout=10, metadata=auth())
        assert not given.replayed and repeated.replayed
        assert given.total_points == shown.result.total_points
        assert repeated.points_balance == 0
