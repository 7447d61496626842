"""TLS and mutual TLS with certificates made by openssl for the test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.server import create_server
from tests.e2e.conftest import PRODUCTION_SECRET, demo_settings


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
