"""What a stranger or a careless deployment must not get: a server that signs tokens with a
public secret, forged tokens that mint points, tokens that never expire, reflection in
production (docs/security.md)."""

from __future__ import annotations

import hmac
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc, token_pb2
from service.api.server import LoyaltyServer, create_server
from service.api.tokens import DEVELOPMENT_SECRET, MAC_SIZE, TokenKey
from tests.e2e.conftest import PRODUCTION_SECRET, auth, demo_settings
from tests.e2e.statuses import refusal


def start_production(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "service.main",
            "--address", "127.0.0.1:0",
            "--database-url", f"sqlite:///{tmp_path / 'never.db'}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "no token secret"),
        ({"LOYALTY_TOKEN_SECRET": DEVELOPMENT_SECRET}, "public development secret"),
        ({"LOYALTY_TOKEN_SECRET": "x" * 31}, "shorter than 32 bytes"),
    ],
)
def test_a_production_start_without_a_real_secret_is_refused_in_one_line(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    done = start_production(tmp_path, env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "never.db").exists()  # refused before it touched the store


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoyaltyServer]:
    """No demo data, no development mode: the secret comes from a file. The demo data is
    loaded by a development server first, so there is something to calculate."""
    directory = tmp_path_factory.mktemp("production")
    secret = directory / "token-secret"
    secret.write_text(PRODUCTION_SECRET + "\n")
    seeded, _ = create_server(demo_settings(directory))
    seeded.start()
    seeded.stop(grace=0.5)
    server, _ = create_server(
        demo_settings(directory, demo_data=False, token_secret_file=str(secret), token_key_id="k7")
    )
    server.start()
    try:
        yield server
    finally:
        server.stop(grace=0.5)


@pytest.fixture(scope="module")
def receipts(production: LoyaltyServer) -> Iterator[receipt_pb2_grpc.ReceiptServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{production.port}") as channel:
        yield receipt_pb2_grpc.ReceiptServiceStub(channel)


def demo_receipt(receipt_id: str) -> receipt_pb2.Receipt:
    made = load_receipt(register_cli.DEMO_RECEIPT)[0]
    made.receipt_id = receipt_id
    return made


def test_reflection_is_off_in_production(production: LoyaltyServer) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{production.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def forge(token: bytes, points_factor: int) -> bytes:
    """What a REGISTER holder would try: multiply the points and sign again with the public
    development secret under the server's own key id."""
    key_id_end = 2 + token[1]
    payload = token_pb2.ConfirmationTokenPayload.FromString(token[key_id_end + MAC_SIZE :])
    payload.result.total_points *= points_factor
    body = payload.SerializeToString(deterministic=True)
    header = token[:key_id_end]
    key = TokenKey(header[2:].decode(), DEVELOPMENT_SECRET).mac_key()
    return header + hmac.digest(key, header + body, "sha256") + body


def test_a_token_signed_again_with_the_public_secret_mints_nothing(
    receipts: receipt_pb2_grpc.ReceiptServiceStub,
) -> None:
    sent = demo_receipt("SEC-FORGED-1")
    shown = receipts.Calculate(
        receipt_pb2.CalculateRequest(receipt=sent), timeout=10, metadata=auth()
    )
    assert shown.result.total_points > 0
    forged = forge(shown.confirmation_token, 100_000)
    with pytest.raises(grpc.RpcError) as refused:
        receipts.Confirm(
            receipt_pb2.ConfirmRequest(receipt=sent, confirmation_token=forged),
            timeout=10,
            metadata=auth(),
        )
    assert refusal(refused.value) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "TOKEN_INVALID",
        "confirmation_token",
    )
    genuine = receipts.Confirm(
        receipt_pb2.ConfirmRequest(receipt=sent, confirmation_token=shown.confirmation_token),
        timeout=10,
        metadata=auth(),
    )
    assert not genuine.replayed  # the forged confirm wrote nothing
    assert genuine.result == shown.result


def test_an_expired_token_is_failed_precondition_telling_the_register_to_recalculate(
    tmp_path: Path,
) -> None:
    server, port = create_server(demo_settings(tmp_path, token_ttl_s=1e-6))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
            sent = demo_receipt("SEC-EXPIRED-1")
            shown = stub.Calculate(
                receipt_pb2.CalculateRequest(receipt=sent), timeout=10, metadata=auth()
            )
            with pytest.raises(grpc.RpcError) as refused:
                stub.Confirm(
                    receipt_pb2.ConfirmRequest(
                        receipt=sent, confirmation_token=shown.confirmation_token
                    ),
                    timeout=10,
                    metadata=auth(),
                )
    finally:
        server.stop(grace=0.5)
    code, reason, _field = refusal(refused.value)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TOKEN_EXPIRED")
    assert "calculate the receipt again" in (refused.value.details() or "")
