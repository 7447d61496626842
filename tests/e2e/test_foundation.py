"""The service end to end: a real server on loopback, real channels, the demo data."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import common_pb2, receipt_pb2, receipt_pb2_grpc
from service.api.auth import DEV_TOKENS, Role
from service.api.server import STORE_HEALTH, LoyaltyServer, create_server
from tests.e2e.conftest import PRODUCTION_SECRET, auth, demo_settings


def calculate(channel: grpc.Channel, receipt: receipt_pb2.Receipt) -> receipt_pb2.ReceiptResult:
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    request = receipt_pb2.CalculateRequest(receipt=receipt)
    return stub.Calculate(request, timeout=10, metadata=auth()).result


def demo_receipt() -> receipt_pb2.Receipt:
    return load_receipt(register_cli.DEMO_RECEIPT)[0]


def test_health_says_serving_once_store_and_cache_are_ready(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "loyalty.v1.ReceiptService"):
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_health_says_not_serving_before_the_store_is_prepared(tmp_path: Path) -> None:
    server, port = create_server(
        demo_settings(tmp_path, demo_data=False, token_secret=PRODUCTION_SECRET)
    )
    server.grpc_server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            before = stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            store_before = stub.Check(
                health_pb2.HealthCheckRequest(service=STORE_HEALTH), timeout=5
            ).status
            server.prepare()
            after = stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status
    finally:
        server.stop(grace=0.5)
    assert before == health_pb2.HealthCheckResponse.NOT_SERVING
    assert store_before == health_pb2.HealthCheckResponse.NOT_SERVING
    assert after == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_every_loyalty_service(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (answer,) = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in answer.list_services_response.service}
    assert {
        "loyalty.v1.ReceiptService",
        "loyalty.v1.MemberService",
        "loyalty.v1.BackOfficeService",
        "loyalty.v1.NotificationService",
        "grpc.health.v1.Health",
    } <= names


def test_demo_receipt_shows_a_benefit_of_every_individual_mechanic(
    channel: grpc.Channel,
) -> None:
    result = calculate(channel, demo_receipt())
    mechanics = {b.mechanic for line in result.lines for b in line.benefits}
    assert {
        common_pb2.MECHANIC_FAVORITE_PRODUCTS,
        common_pb2.MECHANIC_FAVORITE_CATEGORIES,
        common_pb2.MECHANIC_PERSONALIZED_OFFER,
    } <= mechanics
    assert result.total_discount > 0
    assert result.total_paid == sum(line.paid for line in result.lines)
    assert result.total_amount == result.total_discount + result.total_paid


def test_demo_receipt_reports_its_unknown_sku_and_gives_the_excluded_product_nothing(
    channel: grpc.Channel,
) -> None:
    data = json.loads(register_cli.DEMO_RECEIPT.read_text())
    result = calculate(channel, demo_receipt())
    assert result.unknown_skus, "the demo receipt carries one unknown SKU"
    unknown = set(result.unknown_skus)
    assert all(not line.known_sku for line in result.lines if line.sku in unknown)
    assert len(result.lines) == len(data["lines"])


def test_an_anonymous_receipt_gets_no_member_benefits(channel: grpc.Channel) -> None:
    receipt = demo_receipt()
    receipt.ClearField("member")
    result = calculate(channel, receipt)
    member_only = {
        common_pb2.MECHANIC_MEMBERS_ONLY,
        common_pb2.MECHANIC_TARGET_AUDIENCE,
        common_pb2.MECHANIC_FAVORITE_PRODUCTS,
        common_pb2.MECHANIC_FAVORITE_CATEGORIES,
        common_pb2.MECHANIC_PERSONALIZED_OFFER,
    }
    assert result.member_id == ""
    assert not {b.mechanic for line in result.lines for b in line.benefits} & member_only


def test_an_unknown_card_is_not_found(channel: grpc.Channel) -> None:
    receipt = demo_receipt()
    receipt.member.card_number = "9999999999999"
    with pytest.raises(grpc.RpcError) as caught:
        calculate(channel, receipt)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_unspecified_channel_is_invalid_and_names_the_field(channel: grpc.Channel) -> None:
    receipt = demo_receipt()
    receipt.channel = common_pb2.CHANNEL_UNSPECIFIED
    with pytest.raises(grpc.RpcError) as caught:
        calculate(channel, receipt)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)
    assert status is not None
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    assert fields == ["receipt.channel"]


def test_register_client_prints_the_demo_receipt_as_a_cashier_reads_it(
    demo_server: LoyaltyServer, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"127.0.0.1:{demo_server.port}"
    token = DEV_TOKENS[Role.REGISTER]
    code = register_cli.main(["--target", target, "--demo", "--token", token])
    printed = capsys.readouterr().out
    assert code == 0
    assert "TOTAL" in printed
    assert "Favorite" in printed or "favorite" in printed


def test_register_client_reads_its_credential_from_a_file_named_in_the_environment(
    demo_server: LoyaltyServer,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_file = tmp_path / "register-token"
    token_file.write_text(DEV_TOKENS[Role.REGISTER] + "\n")
    monkeypatch.delenv("LOYALTY_TOKEN", raising=False)
    monkeypatch.setenv("LOYALTY_TOKEN_FILE", str(token_file))
    code = register_cli.main(["--target", f"127.0.0.1:{demo_server.port}", "--demo"])
    assert code == 0
    assert "TOTAL" in capsys.readouterr().out


def test_register_client_with_an_unreadable_token_file_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as stopped:
        register_cli.main(["--demo", "--token-file", str(tmp_path / "missing")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "cannot read the credential" in error and "Traceback" not in error
