"""The Python client library against a real server: deadlines, safe retries, credentials, TLS."""

from __future__ import annotations

import random
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from clients.client import (
    NO_RETRY,
    LoyaltyClient,
    LoyaltyError,
    RetryEvent,
    RetryPolicy,
    TlsConfig,
    by_card,
)
from clients.receipt_format import load_receipt
from clients.register_cli import DEMO_RECEIPT
from loyalty.v1 import common_pb2, receipt_pb2, receipt_pb2_grpc
from service.api.auth import DEV_TOKENS, Role
from service.api.server import LoyaltyServer, create_server
from tests.e2e.conftest import demo_settings
from tests.pg import free_port
from tests.waiting import until

REGISTER = DEV_TOKENS[Role.REGISTER]


def demo_receipt() -> receipt_pb2.Receipt:
    return load_receipt(DEMO_RECEIPT)[0]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


@pytest.fixture
def client(demo_server: LoyaltyServer) -> Iterator[LoyaltyClient]:
    with LoyaltyClient(f"127.0.0.1:{demo_server.port}", REGISTER, timeout=10) as c:
        yield c


def test_a_client_calculates_the_demo_receipt_with_a_bearer_credential(
    client: LoyaltyClient,
) -> None:
    response = client.calculate(demo_receipt())
    assert response.result.member_id == "M000001"
    assert response.result.total_paid == sum(line.paid for line in response.result.lines)
    assert client.stats.calls["Calculate"] == 1
    assert client.stats.retries["Calculate"] == 0


def test_a_call_made_before_the_server_is_up_succeeds_once_it_starts(tmp_path: Path) -> None:
    port = free_port()
    events: list[RetryEvent] = []
    servers: list[LoyaltyServer] = []

    def start_later() -> None:
        until(lambda: len(events) >= 2, what="two attempts refused")  # the client is retrying
        server, _ = create_server(demo_settings(tmp_path, address=f"127.0.0.1:{port}"))
        servers.append(server)
        server.prepare()  # store and cache ready before the first call is taken
        server.grpc_server.start()

    starter = threading.Thread(target=start_later)
    retry = RetryPolicy(max_attempts=100, initial_backoff_s=0.05, max_backoff_s=0.3)
    try:
        with LoyaltyClient(
            f"127.0.0.1:{port}", REGISTER, timeout=20, retry=retry, on_retry=events.append
        ) as client:
            starter.start()
            response = client.calculate(demo_receipt())
    finally:
        starter.join(timeout=20)
        for server in servers:
            server.stop(grace=0.5)
    assert response.result.member_id == "M000001"
    assert events, "the first attempts found no server and were retried"
    assert {e.code for e in events} == {grpc.StatusCode.UNAVAILABLE}
    assert all(0 < e.delay_s <= 0.3 for e in events)


def test_a_call_to_a_port_nobody_listens_on_gives_up_after_its_attempts() -> None:
    retry = RetryPolicy(max_attempts=3, initial_backoff_s=0.05, max_backoff_s=0.1)
    started = time.monotonic()
    with (
        LoyaltyClient(f"127.0.0.1:{free_port()}", REGISTER, timeout=10, retry=retry) as client,
        pytest.raises(LoyaltyError) as caught,
    ):
        client.calculate(demo_receipt())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert caught.value.attempts == 3
    assert client.stats.attempts["Calculate"] == 3
    assert time.monotonic() - started < 5


def test_a_call_to_a_server_that_never_answers_ends_at_its_deadline_without_retry(
    silent_port: int,
) -> None:
    started = time.monotonic()
    with (
        LoyaltyClient(f"127.0.0.1:{silent_port}", REGISTER, timeout=0.8) as client,
        pytest.raises(LoyaltyError) as caught,
    ):
        client.calculate(demo_receipt())
    elapsed = time.monotonic() - started
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.attempts == 1, "the call's time was spent: no second attempt"
    assert 0.7 <= elapsed < 2.0


def test_a_calculation_whose_attempt_times_out_is_retried_within_the_call_deadline(
    silent_port: int,
) -> None:
    started = time.monotonic()
    with (
        LoyaltyClient(
            f"127.0.0.1:{silent_port}", REGISTER, timeout=1.0, attempt_timeout=0.3
        ) as client,
        pytest.raises(LoyaltyError) as caught,
    ):
        client.calculate(demo_receipt())
    elapsed = time.monotonic() - started
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.attempts >= 2
    assert elapsed < 1.5, "retries never run past the call's own deadline"


def test_a_member_selection_is_not_retried_after_its_attempt_times_out(
    silent_port: int,
) -> None:
    with (
        LoyaltyClient(
            f"127.0.0.1:{silent_port}",
            DEV_TOKENS[Role.CUSTOMER_SERVICES],
            timeout=2.0,
            attempt_timeout=0.3,
        ) as client,
        pytest.raises(LoyaltyError) as caught,
    ):
        client.select_favorite_products(by_card("2000000000001"), "I-FAV-PRODUCTS", ["x"])
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.attempts == 1


def test_every_call_carries_a_deadline_that_the_server_honours(client: LoyaltyClient) -> None:
    receipt = demo_receipt()
    for number in range(len(receipt.lines) + 1, 1000):  # a long receipt: work for many ms
        receipt.lines.add().CopyFrom(receipt.lines[number % 6])
        receipt.lines[-1].line_id = str(number)
    with pytest.raises(LoyaltyError) as caught:
        client.calculate(receipt, timeout=0.001)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.attempts == 1


def test_a_refused_call_is_not_retried_and_says_why(client: LoyaltyClient) -> None:
    receipt = demo_receipt()
    receipt.member.card_number = "2000999999999"
    with pytest.raises(LoyaltyError) as caught:
        client.calculate(receipt)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.reason == "CARD_NOT_FOUND"
    assert caught.value.attempts == 1
    assert "CARD_NOT_FOUND" in caught.value.describe()


def test_an_invalid_receipt_names_the_field_at_fault(client: LoyaltyClient) -> None:
    receipt = demo_receipt()
    receipt.channel = common_pb2.CHANNEL_UNSPECIFIED
    with pytest.raises(LoyaltyError) as caught:
        client.calculate(receipt)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.fields == ("receipt.channel",)


def test_a_client_without_a_credential_is_unauthenticated(demo_server: LoyaltyServer) -> None:
    with (
        LoyaltyClient(f"127.0.0.1:{demo_server.port}", "", retry=NO_RETRY) as client,
        pytest.raises(LoyaltyError) as caught,
    ):
        client.calculate(demo_receipt())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_client_waits_until_the_server_is_serving(client: LoyaltyClient) -> None:
    client.wait_until_serving(timeout=5)
    assert client.is_serving("loyalty.v1.ReceiptService")


def test_the_client_looks_up_a_members_offers_by_card(demo_server: LoyaltyServer) -> None:
    token = DEV_TOKENS[Role.CUSTOMER_SERVICES]
    with LoyaltyClient(f"127.0.0.1:{demo_server.port}", token) as client:
        offers = client.get_member_offers(by_card("2000000000001"))
    assert offers.member_id == "M000001"
    assert offers.favorite_products


def test_backoff_grows_exponentially_stays_within_its_bounds_and_is_jittered() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff_s=0.1, max_backoff_s=1.0)
    rng = random.Random(7)
    for attempt, cap in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert len(set(delays)) > 100, "jittered, not one fixed pause"


def test_a_retry_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(initial_backoff_s=2.0, max_backoff_s=1.0)


# --- TLS -----------------------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Test CA",
        "-keyout", "ca.key", "-out", "ca.pem", cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, ext in (("server", ["-extfile", "server.ext"]), ("client", [])):
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *ext, cwd=directory,
        )  # fmt: skip
    names = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")
    return {name: directory / name for name in names}


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, Path]]]:
    """The real server with the demo data, on a port that demands mutual TLS."""
    directory = tmp_path_factory.mktemp("tls")
    files = make_certificates(directory)
    server, _ = create_server(demo_settings(directory))
    credentials = grpc.ssl_server_credentials(
        [(files["server.key"].read_bytes(), files["server.pem"].read_bytes())],
        root_certificates=files["ca.pem"].read_bytes(),
        require_client_auth=True,
    )
    port = server.grpc_server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield port, files
    finally:
        server.stop(grace=0.5)


def test_the_client_speaks_mutual_tls_with_its_certificate(
    tls_server: tuple[int, dict[str, Path]],
) -> None:
    port, files = tls_server
    tls = TlsConfig.from_files(files["ca.pem"], files["client.pem"], files["client.key"])
    with LoyaltyClient(f"localhost:{port}", REGISTER, tls=tls, timeout=10) as client:
        response = client.calculate(demo_receipt())
    assert response.result.member_id == "M000001"


def test_a_client_without_a_certificate_is_refused_by_a_mutual_tls_server(
    tls_server: tuple[int, dict[str, Path]],
) -> None:
    port, files = tls_server
    tls = TlsConfig.from_files(files["ca.pem"])
    with (
        LoyaltyClient(f"localhost:{port}", REGISTER, tls=tls, timeout=3, retry=NO_RETRY) as client,
        pytest.raises(LoyaltyError) as caught,
    ):
        client.calculate(demo_receipt())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_tls_config_needs_both_certificate_and_key() -> None:
    with pytest.raises(ValueError):
        TlsConfig(certificate_chain=b"cert")


class _SlowFirstConfirm(receipt_pb2_grpc.ReceiptServiceServicer):
    """Holds the first Confirm past the client's attempt timeout; records what each attempt
    said about being resent."""

    def __init__(self) -> None:
        self.resent: list[bool] = []
        self.released = threading.Event()

    def Confirm(self, request, context):  # noqa: N802 - gRPC method name
        self.resent.append(request.resent)
        if len(self.resent) == 1:
            self.released.wait(timeout=10)  # the client has given this attempt up by then
        return receipt_pb2.ConfirmResponse(replayed=len(self.resent) > 1)


def test_a_confirm_sent_again_says_it_is_resent() -> None:
    servicer = _SlowFirstConfirm()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    receipt_pb2_grpc.add_ReceiptServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with LoyaltyClient(
            f"127.0.0.1:{port}", REGISTER, timeout=5.0, attempt_timeout=0.3
        ) as client:
            answer = client.confirm(demo_receipt(), b"token")
    finally:
        servicer.released.set()
        server.stop(grace=None)
    assert answer.replayed
    assert servicer.resent == [False, True]
