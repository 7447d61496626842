"""TLS and mutual TLS with certificates made by openssl for the test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loyalty.v1 import receipt_pb2, till_session_pb2, till_session_pb2_grpc
from loyalty.v1.common_pb2 import CHANNEL_POS
from service.api.server import create_server
from tests.e2e.conftest import PRODUCTION_SECRET, auth, demo_settings


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, signed by it."""
    d = tmp_path_factory.mktemp("pki")
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=d,
    )
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            f"{name}.pem",
            cwd=d,
        )
    return d


def serving_port(tmp_path: Path, pki: Path, mutual: bool) -> Iterator[int]:
    settings = demo_settings(
        tmp_path,
        demo_data=False,
        token_secret=PRODUCTION_SECRET,
        tls_cert=str(pki / "server.pem"),
        tls_key=str(pki / "server.key"),
        tls_client_ca=str(pki / "ca.pem") if mutual else "",
    )
    server, port = create_server(settings)
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=0.5)


@pytest.fixture
def tls_port(tmp_path: Path, pki: Path) -> Iterator[int]:
    yield from serving_port(tmp_path, pki, mutual=False)


@pytest.fixture
def mtls_port(tmp_path: Path, pki: Path) -> Iterator[int]:
    yield from serving_port(tmp_path, pki, mutual=True)


def health_over(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def test_a_client_that_trusts_the_ca_talks_tls(tls_port: int, pki: Path) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
    with grpc.secure_channel(f"127.0.0.1:{tls_port}", creds) as channel:
        assert health_over(channel) == health_pb2.HealthCheckResponse.SERVING


def test_a_plaintext_client_cannot_talk_to_a_tls_server(tls_port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{tls_port}") as channel, pytest.raises(grpc.RpcError):
        health_over(channel)


def test_mutual_tls_refuses_a_client_without_a_certificate(mtls_port: int, pki: Path) -> None:
    creds = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.pem").read_bytes())
    with (
        grpc.secure_channel(f"127.0.0.1:{mtls_port}", creds) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        health_over(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_accepts_a_client_certificate_signed_by_the_ca(
    mtls_port: int, pki: Path
) -> None:
    creds = grpc.ssl_channel_credentials(
        root_certificates=(pki / "ca.pem").read_bytes(),
        private_key=(pki / "client.key").read_bytes(),
        certificate_chain=(pki / "client.pem").read_bytes(),
    )
    with grpc.secure_channel(f"127.0.0.1:{mtls_port}", creds) as channel:
        assert health_over(channel) == health_pb2.HealthCheckResponse.SERVING


def test_till_sessions_take_the_same_mutual_tls(tmp_path: Path, pki: Path) -> None:
    settings = demo_settings(
        tmp_path,
        till_session_address="127.0.0.1:0",
        tls_cert=str(pki / "server.pem"),
        tls_key=str(pki / "server.key"),
        tls_client_ca=str(pki / "ca.pem"),
    )
    server, _ = create_server(settings)
    server.start()
    ca = (pki / "ca.pem").read_bytes()
    with_cert = grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=(pki / "client.key").read_bytes(),
        certificate_chain=(pki / "client.pem").read_bytes(),
    )
    target = f"127.0.0.1:{server.till_session_port}"
    try:
        with grpc.secure_channel(target, with_cert) as channel:
            assert opened_session(channel).line_count == 0
        for refused in (
            grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=ca)),
            grpc.insecure_channel(target),
        ):
            with refused, pytest.raises(grpc.RpcError) as caught:
                opened_session(refused)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(grace=0.5)


def opened_session(channel: grpc.Channel) -> till_session_pb2.SessionResponse:
    receipt = receipt_pb2.Receipt(receipt_id="TLS-1", store_id="S001", channel=CHANNEL_POS)
    start = till_session_pb2.SessionRequest(start={"receipt": receipt})
    stub = till_session_pb2_grpc.TillSessionServiceStub(channel)
    (answer,) = stub.Session(iter([start]), metadata=auth(), timeout=10)
    return answer
