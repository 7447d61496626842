"""The limits of till sessions on a real server: sessions per connection and per credential,
the idle timeout of an abandoned session, messages and lines per session."""

from __future__ import annotations

import contextlib
import queue
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from clients import register_cli
from clients.client import LoyaltyClient
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, till_session_pb2
from loyalty.v1 import till_session_pb2_grpc as session_grpc
from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer, create_server
from service.port import CannotListen
from tests.e2e.conftest import auth, demo_settings
from tests.e2e.statuses import refusal
from tests.waiting import until

Request = till_session_pb2.SessionRequest
# Each channel its own TCP connection (by default channels to one target share one).
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


@contextlib.contextmanager
def serving(tmp_path: Path, **overrides: Any) -> Iterator[LoyaltyServer]:
    settings = demo_settings(tmp_path, till_session_address="127.0.0.1:0", **overrides)
    server, _ = create_server(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=0.5)


def demo_receipt() -> receipt_pb2.Receipt:
    return load_receipt(register_cli.DEMO_RECEIPT)[0]


def start(lines: int = 1) -> Request:
    receipt = demo_receipt()
    del receipt.lines[lines:]
    return Request(start=till_session_pb2.SessionStart(receipt=receipt))


def scan(line_id: str) -> Request:
    line = receipt_pb2.ReceiptLine(line_id=line_id, sku="4600000000015", quantity=1000)
    line.price = line.amount = 8790
    return Request(scan=till_session_pb2.SessionScan(line=line))


class Stream:
    """A session held open by the test: messages sent one at a time, answers read."""

    def __init__(self, channel: grpc.Channel) -> None:
        self._requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        stub = session_grpc.TillSessionServiceStub(channel)
        self._answers = stub.Session(iter(self._requests.get, None), metadata=auth(), timeout=30)

    def send(self, request: Request) -> Any:
        self._requests.put(request)
        return next(self._answers)

    def close(self) -> None:
        self._requests.put(None)
        self._answers.cancel()


def channel_to(server: LoyaltyServer) -> grpc.Channel:
    return grpc.insecure_channel(f"127.0.0.1:{server.till_session_port}", options=OWN_CONNECTION)


def refused(stream: Stream, request: Request) -> tuple[grpc.StatusCode, str, str]:
    with pytest.raises(grpc.RpcError) as caught:
        stream.send(request)
    return refusal(caught.value)


def open_sessions(server: LoyaltyServer) -> int:
    assert server.till_sessions is not None
    return server.till_sessions.open_sessions


def test_sessions_per_connection_and_per_credential_are_bounded(tmp_path: Path) -> None:
    with (
        serving(tmp_path, till_sessions_per_connection=2, till_sessions_per_credential=3) as server,
        channel_to(server) as a,
        channel_to(server) as b,
        channel_to(server) as c,
    ):
        held = [Stream(a), Stream(a)]
        for stream in held:
            assert stream.send(start()).line_count == 1
        too_many = grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_SESSIONS"
        assert refused(Stream(a), start())[:2] == too_many, "a third on one connection"
        on_b = Stream(b)
        assert on_b.send(start()).line_count == 1, "another connection has room"
        assert refused(Stream(c), start())[:2] == too_many, "a fourth for the credential"
        held.pop().close()

        def opens_again() -> bool:
            try:
                held.append(Stream(a))
                held[-1].send(start())
                return True
            except grpc.RpcError:
                return False

        until(opens_again, what="a closed session's slot given back")
        for stream in [*held, on_b]:
            stream.close()
        until(lambda: open_sessions(server) == 0, what="every slot given back")


def test_an_abandoned_session_is_ended_and_the_client_library_goes_on(tmp_path: Path) -> None:
    with serving(tmp_path, till_session_idle_s=0.3) as server:
        with channel_to(server) as ch:
            stream = Stream(ch)
            stream.send(start())
            until(lambda: open_sessions(server) == 0, what="the idle session ended")
            code, reason, _ = refused(stream, scan("9"))  # its status waits for the register
            assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SESSION_IDLE")
        with LoyaltyClient(
            f"127.0.0.1:{server.port}",
            DEV_TOKENS[Role.REGISTER],
            session_target=f"127.0.0.1:{server.till_session_port}",
        ) as client:
            session = client.till_session(start(lines=2).start.receipt)
            session.scan(scan("9").scan.line)
            until(lambda: open_sessions(server) == 0, what="the session ended for idleness")
            answer = session.scan(scan("10").scan.line)  # reopened with its three lines
            assert answer.line_count == 4
            assert [x.line_id for x in answer.result.lines] == ["1", "2", "9", "10"]
            session.close()


def test_messages_and_lines_per_session_are_bounded(tmp_path: Path) -> None:
    limited = {"till_session_max_messages": 3, "max_receipt_lines": 3}
    with serving(tmp_path, **limited) as server, channel_to(server) as ch:
        stream = Stream(ch)
        stream.send(start(lines=2))
        stream.send(scan("9"))
        code, _, field = refused(stream, scan("10"))
        assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "scan.line")
        stream = Stream(ch)
        for request in (start(), scan("9"), scan("10")):
            stream.send(request)
        code, reason, _ = refused(stream, scan("11"))
        assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "SESSION_TOO_LONG")


def test_an_address_in_use_is_refused_and_leaves_the_other_port_free(tmp_path: Path) -> None:
    for busy_one in ("address", "till_session_address"):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            ports = {"address": free_port(), "till_session_address": free_port()}
            ports[busy_one] = taken.getsockname()[1]
            addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
            settings = demo_settings(tmp_path / busy_one, **addresses)
            with pytest.raises(CannotListen, match="cannot be bound"):
                create_server(settings)
        for name, port in ports.items():
            if name != busy_one:  # nothing of the failed server holds it
                with socket.socket() as again:
                    again.bind(("127.0.0.1", port))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
