"""A thousand till sessions open on one process hold none of the unary server's workers:
Calculate answers while they are open, and so does each session."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc, till_session_pb2
from loyalty.v1 import till_session_pb2_grpc as session_grpc
from service.api.server import LoyaltyServer, create_server
from tests.e2e.conftest import auth, demo_settings

SESSIONS = 1000
CONNECTIONS = 10
Request = till_session_pb2.SessionRequest


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LoyaltyServer]:
    # Two workers for unary calls: a thread per session would have taken them at once.
    settings = demo_settings(tmp_path, till_session_address="127.0.0.1:0", max_workers=2)
    loyalty, _ = create_server(settings)
    loyalty.start()
    try:
        yield loyalty
    finally:
        loyalty.stop(grace=0.5)


def demo_receipt(receipt_id: str) -> receipt_pb2.Receipt:
    receipt = load_receipt(register_cli.DEMO_RECEIPT)[0]
    receipt.receipt_id = receipt_id
    return receipt


class Session:
    """One open session of the asyncio client."""

    def __init__(self, channel: grpc.aio.Channel, number: int) -> None:
        self.receipt = demo_receipt(f"SCALE-{number}")
        self.call: Any = session_grpc.TillSessionServiceStub(channel).Session(metadata=auth())

    async def send(self, request: Request) -> Any:
        await self.call.write(request)
        return await self.call.read()

    async def open(self) -> None:
        opened = receipt_pb2.Receipt()
        opened.CopyFrom(self.receipt)
        del opened.lines[1:]
        answer = await self.send(Request(start=till_session_pb2.SessionStart(receipt=opened)))
        assert answer.line_count == 1

    async def scan_second_line(self) -> Any:
        return await self.send(
            Request(scan=till_session_pb2.SessionScan(line=self.receipt.lines[1]))
        )


def unary_calculates(port: int, count: int) -> list[receipt_pb2.CalculateResponse]:
    """Calculate on the unary port, from a thread of its own (a blocking client)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = receipt_pb2_grpc.ReceiptServiceStub(ch)
        request = receipt_pb2.CalculateRequest(receipt=demo_receipt("UNARY-1"))
        return [stub.Calculate(request, metadata=auth(), timeout=20) for _ in range(count)]


async def thousand_sessions(server: LoyaltyServer) -> None:
    target = f"127.0.0.1:{server.till_session_port}"
    options = [("grpc.use_local_subchannel_pool", 1)]  # each channel a connection of its own
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(CONNECTIONS)]
    try:
        sessions = [Session(channels[n % CONNECTIONS], n) for n in range(SESSIONS)]
        for batch in range(0, SESSIONS, 100):
            await asyncio.gather(*(s.open() for s in sessions[batch : batch + 100]))
        assert server.till_sessions is not None
        assert server.till_sessions.open_sessions == SESSIONS

        answers = await asyncio.to_thread(unary_calculates, server.port, 20)
        assert all(a.confirmation_token and a.result.total_paid > 0 for a in answers)

        scanned = await asyncio.gather(*(s.scan_second_line() for s in sessions[:50]))
        assert all(answer.line_count == 2 for answer in scanned), "sessions answer too"
        assert server.till_sessions.open_sessions == SESSIONS

        for s in sessions:
            await s.call.done_writing()
        codes = await asyncio.gather(*(s.call.code() for s in sessions))
        assert set(codes) == {grpc.StatusCode.OK}, "the register ends a session by closing"
    finally:
        await asyncio.gather(*(ch.close() for ch in channels))


def test_calculate_answers_while_a_thousand_sessions_are_open(server: LoyaltyServer) -> None:
    asyncio.run(asyncio.wait_for(thousand_sessions(server), timeout=240))
    assert server.till_sessions is not None
    assert server.till_sessions.open_sessions == 0
