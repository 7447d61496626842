"""SIGTERM during a stream of confirms: calls in flight finish within the grace period, no
confirm is acknowledged that was not committed, and the process exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from sqlalchemy import select

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.store import db
from service.store.models import ReceiptRow
from tests.e2e.conftest import auth

# A call that reaches a server already shutting down is refused by gRPC itself, as UNAVAILABLE
# or (racing the listener's close) CANCELLED; both are safe to retry with the same id.
GOING_AWAY = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
# The four streams confirm for one demo member, whose usage-limited offer another stream may
# use up between a Calculate and its Confirm: USAGE_LIMIT_REACHED, a register calculates again.
RECALCULATE = grpc.StatusCode.FAILED_PRECONDITION


def start_server(database: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "LOYALTY_LOG_LEVEL": "WARNING", "LOYALTY_JOBS_INTERVAL_S": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "service.main", "--address", "127.0.0.1:0",
         "--database-url", f"sqlite:///{database}", "--demo-data", "on",
         "--grace-period-s", "5", "--log-calls", "off"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "listening on" in line, line
    return process, int(line.strip().rsplit(":", 1)[1])


def confirm_stream(
    port: int,
    stop: threading.Event,
    acked: list[str],
    sent: list[str],
    refused: list[grpc.StatusCode],
) -> None:
    receipt, _ = load_receipt(register_cli.DEMO_RECEIPT)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
        number = 0
        while not stop.is_set():
            number += 1
            receipt.receipt_id = f"DRAIN-{number}"
            try:
                calculated = stub.Calculate(
                    receipt_pb2.CalculateRequest(receipt=receipt), timeout=10, metadata=auth()
                )
                sent.append(receipt.receipt_id)
                stub.Confirm(
                    receipt_pb2.ConfirmRequest(
                        receipt=receipt, confirmation_token=calculated.confirmation_token
                    ),
                    timeout=10,
                    metadata=auth(),
                )
                acked.append(receipt.receipt_id)
            except grpc.RpcError as err:
                refused.append(err.code())
                if err.code() in GOING_AWAY:
                    return  # the server is going away: a register retries elsewhere, same id


def test_sigterm_during_confirms_acknowledges_only_what_was_committed(tmp_path: Path) -> None:
    database = tmp_path / "drain.db"
    process, port = start_server(database)
    acked: list[str] = []
    sent: list[str] = []
    refused: list[grpc.StatusCode] = []
    stop = threading.Event()
    clients = [
        threading.Thread(target=confirm_stream, args=(port, stop, acked, sent, refused))
        for _ in range(4)
    ]
    try:
        for client in clients:
            client.start()
        deadline = time.monotonic() + 20
        while len(acked) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, "the server exits cleanly after draining"
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=15)
        if process.poll() is None:
            process.kill()
            process.wait()
    engine = db.make_engine(f"sqlite:///{database}")
    with db.make_session_factory(engine)() as session:
        committed = set(session.scalars(select(ReceiptRow.receipt_id)))
    engine.dispose()
    assert len(acked) >= 20
    assert set(acked) <= committed, "every acknowledged confirm was committed"
    assert committed <= set(sent), "nothing was committed that was not sent"
    assert set(refused) <= GOING_AWAY | {RECALCULATE}, refused
