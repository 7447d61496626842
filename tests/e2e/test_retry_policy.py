"""The published retry policy (clients/service_config.json): it names only real methods, and a
channel carrying it gets through a server that answers UNAVAILABLE once — for the idempotent
calls only."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2

from clients.client import (
    NO_RETRY,
    RETRYABLE,
    SERVICE_CONFIG_PATH,
    LoyaltyClient,
    by_card,
    channel_options,
    open_channel,
)
from loyalty.v1 import (
    backoffice_pb2,
    coupons_pb2,
    member_pb2,
    member_pb2_grpc,
    notification_pb2,
    receipt_pb2,
    receipt_pb2_grpc,
    replay_pb2,
    till_session_pb2,
)

CONFIG = json.loads(SERVICE_CONFIG_PATH.read_text(encoding="utf-8"))
FILES = (
    receipt_pb2,
    member_pb2,
    backoffice_pb2,
    notification_pb2,
    coupons_pb2,
    replay_pb2,
    till_session_pb2,
    health_pb2,
)
SERVICES = {s.full_name: s for f in FILES for s in f.DESCRIPTOR.services_by_name.values()}
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def configured() -> Iterator[tuple[dict, str, str]]:
    for method_config in CONFIG["methodConfig"]:
        for name in method_config["name"]:
            yield method_config, name["service"], name["method"]


def test_the_service_config_names_only_real_methods_and_each_unary_one_once() -> None:
    named = [(service, method) for _, service, method in configured()]
    for service, method in named:
        assert service in SERVICES, service
        assert method in SERVICES[service].methods_by_name, f"{service}/{method}"
    assert len(named) == len(set(named)), "a method named twice"
    loyalty_unary = {
        (s.full_name, m.name)
        for s in SERVICES.values()
        if s.full_name.startswith("loyalty.")
        for m in s.methods
        if not (m.client_streaming or m.server_streaming)
    }
    assert loyalty_unary <= set(named), "every unary call has a timeout"


def test_only_idempotent_calls_are_retried_and_only_after_unavailable() -> None:
    retried = {
        method: config["retryPolicy"]["retryableStatusCodes"]
        for config, _service, method in configured()
        if "retryPolicy" in config
    }
    assert all(codes == ["UNAVAILABLE"] for codes in retried.values())
    assert "OperatorSetFavoriteProducts" not in retried  # audited: each call is an entry
    assert {"Calculate", "Confirm", "Refund", "GetMemberOffers"} <= set(retried)
    for method_config in CONFIG["methodConfig"]:
        policy = method_config.get("retryPolicy")
        if policy:
            assert 2 <= policy["maxAttempts"] <= 5  # gRPC caps attempts at 5
    # The Python library retries exactly what the file retries (plus attempt time-outs).
    assert {m for m, codes in RETRYABLE.items() if UNAVAILABLE in codes} == set(retried)


class FlakyServer:
    """A real gRPC server whose every method answers UNAVAILABLE to its first call, then an
    empty response of the right type; counts the attempts per method."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((self._handler(),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def _handler(self) -> grpc.GenericRpcHandler:
        answers = {
            "/loyalty.v1.ReceiptService/Calculate": receipt_pb2.CalculateResponse,
            "/loyalty.v1.MemberService/GetMemberOffers": member_pb2.GetMemberOffersResponse,
            "/loyalty.v1.MemberService/OperatorSetFavoriteProducts": (
                member_pb2.OperatorSetFavoriteProductsResponse
            ),
        }
        server = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
                method = details.method  # type: ignore[attr-defined]
                if method not in answers:
                    return None
                answer = answers[method]

                def behave(_request: bytes, context: grpc.ServicerContext) -> bytes:
                    with server._lock:
                        server.attempts[method] = server.attempts.get(method, 0) + 1
                        first = server.attempts[method] == 1
                    if first:
                        context.abort(UNAVAILABLE, "restarting")
                    return bytes(answer().SerializeToString())

                return grpc.unary_unary_rpc_method_handler(behave)

        return Handler()

    def tries(self, service: str, method: str) -> int:
        return self.attempts.get(f"/loyalty.v1.{service}/{method}", 0)


@pytest.fixture
def flaky() -> Iterator[FlakyServer]:
    server = FlakyServer()
    server.server.start()
    try:
        yield server
    finally:
        server.server.stop(grace=None)


def test_a_plain_stub_on_the_published_config_gets_through_one_unavailable(
    flaky: FlakyServer,
) -> None:
    with open_channel(f"127.0.0.1:{flaky.port}") as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
        stub.Calculate(receipt_pb2.CalculateRequest(), timeout=5)
    assert flaky.tries("ReceiptService", "Calculate") == 2


def test_without_the_config_the_same_call_fails(flaky: FlakyServer) -> None:
    """The retry above is the config's doing: a channel without it gives up at once."""
    options = channel_options(None, service_config=None)
    with grpc.insecure_channel(f"127.0.0.1:{flaky.port}", options=options) as channel:
        stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Calculate(receipt_pb2.CalculateRequest(), timeout=5)
    assert caught.value.code() == UNAVAILABLE
    assert flaky.tries("ReceiptService", "Calculate") == 1


def test_an_operator_edit_is_not_repeated_by_the_channel(flaky: FlakyServer) -> None:
    with open_channel(f"127.0.0.1:{flaky.port}") as channel:
        stub = member_pb2_grpc.MemberServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.OperatorSetFavoriteProducts(
                member_pb2.OperatorSetFavoriteProductsRequest(), timeout=5
            )
    assert caught.value.code() == UNAVAILABLE
    assert flaky.tries("MemberService", "OperatorSetFavoriteProducts") == 1


def test_the_client_library_uses_the_config_by_default(flaky: FlakyServer) -> None:
    """With its own retries off, the library's call still gets through: its channel retried."""
    with LoyaltyClient(f"127.0.0.1:{flaky.port}", "t.s", retry=NO_RETRY) as client:
        client.get_member_offers(by_card("2000000000001"))
        assert client.stats.attempts["GetMemberOffers"] == 1
    assert flaky.tries("MemberService", "GetMemberOffers") == 2
