"""Every call but health needs a credential; each role stays in its lane."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loyalty.v1 import backoffice_pb2, backoffice_pb2_grpc, receipt_pb2, receipt_pb2_grpc
from service.api.auth import Role
from service.api.server import LoyaltyServer
from service.store import db
from service.store.credentials_repo import create_credential, revoke_credential
from tests.e2e.conftest import auth


def a_receipt(store_id: str = "S001") -> receipt_pb2.CalculateRequest:
    request = receipt_pb2.CalculateRequest()
    receipt = request.receipt
    receipt.receipt_id, receipt.store_id, receipt.channel = "AUTH-1", store_id, 1
    receipt.lines.add(line_id="1", sku="UNKNOWN-SKU", quantity=1000, price=100, amount=100)
    return request


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code()


def new_token(server: LoyaltyServer, role: str, stores: tuple[str, ...] = ()) -> str:
    with db.make_session_factory(server.store).begin() as session:
        token = create_credential(
            session,
            name=f"test-{role}",
            role=role,
            store_ids=stores,
            all_stores=role == "REGISTER" and not stores,
        )
    server.credentials.reload()  # what the change-feed follower does on every replica
    return token


def test_health_needs_no_credential(channel: grpc.Channel) -> None:
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        (("authorization", "Bearer "),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer dev-register.wrong-secret"),),
        (("authorization", "Bearer no-such-id.some-secret"),),
    ],
)
def test_a_missing_or_wrong_credential_is_unauthenticated(
    channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] | None
) -> None:
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    assert (
        code_of(lambda: stub.Calculate(a_receipt(), timeout=5, metadata=metadata))
        == grpc.StatusCode.UNAUTHENTICATED
    )


def test_a_register_may_not_call_the_back_office(channel: grpc.Channel) -> None:
    stub = backoffice_pb2_grpc.BackOfficeServiceStub(channel)
    request = backoffice_pb2.UpsertStoresRequest()
    assert (
        code_of(lambda: stub.UpsertStores(request, timeout=5, metadata=auth(Role.REGISTER)))
        == grpc.StatusCode.PERMISSION_DENIED
    )


def test_the_back_office_may_not_calculate_receipts(channel: grpc.Channel) -> None:
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    metadata = auth(Role.BACK_OFFICE)
    assert (
        code_of(lambda: stub.Calculate(a_receipt(), timeout=5, metadata=metadata))
        == grpc.StatusCode.PERMISSION_DENIED
    )


def test_a_register_bound_to_its_stores_may_not_act_for_another(
    demo_server: LoyaltyServer, channel: grpc.Channel
) -> None:
    token = new_token(demo_server, "REGISTER", ("S001",))
    metadata = (("authorization", f"Bearer {token}"),)
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    assert stub.Calculate(a_receipt("S001"), timeout=5, metadata=metadata).result.total_amount
    assert (
        code_of(lambda: stub.Calculate(a_receipt("S002"), timeout=5, metadata=metadata))
        == grpc.StatusCode.PERMISSION_DENIED
    )


def test_a_revoked_credential_stops_working(
    demo_server: LoyaltyServer, channel: grpc.Channel
) -> None:
    token = new_token(demo_server, "REGISTER")
    metadata = (("authorization", f"Bearer {token}"),)
    stub = receipt_pb2_grpc.ReceiptServiceStub(channel)
    assert stub.Calculate(a_receipt(), timeout=5, metadata=metadata).result.total_amount == 100
    with db.make_session_factory(demo_server.store).begin() as session:
        assert revoke_credential(session, token.split(".")[0])
    demo_server.credentials.reload()  # what the change-feed follower does on every replica
    assert (
        code_of(lambda: stub.Calculate(a_receipt(), timeout=5, metadata=metadata))
        == grpc.StatusCode.UNAUTHENTICATED
    )


def _every_method() -> list[tuple[str, Any, frozenset[Role]]]:
    from service.api.auth import roles_for
    from tests.e2e.test_fuzz import METHODS

    return [(path, method, roles_for(path) or frozenset()) for path, method, _role in METHODS]


EVERY_METHOD = _every_method()


def _call_with(channel: grpc.Channel, path: str, method: Any, metadata: Any) -> grpc.StatusCode:
    from google.protobuf.message_factory import GetMessageClass

    request = GetMessageClass(method.input_type)()
    codec = (request.SerializeToString, GetMessageClass(method.output_type).FromString)
    try:
        if method.client_streaming:
            channel.stream_unary(path, *codec)(iter([request]), timeout=5, metadata=metadata)
        elif method.server_streaming:
            for _ in channel.unary_stream(path, *codec)(request, timeout=1, metadata=metadata):
                pass
        else:
            channel.unary_unary(path, *codec)(request, timeout=5, metadata=metadata)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("path", "method", "allowed"), EVERY_METHOD, ids=[m[0] for m in EVERY_METHOD]
)
def test_every_method_refuses_a_missing_credential_and_every_role_not_its_own(
    channel: grpc.Channel, path: str, method: Any, allowed: frozenset[Role]
) -> None:
    assert allowed, f"{path} has no role that may call it"
    assert _call_with(channel, path, method, None) == grpc.StatusCode.UNAUTHENTICATED
    for role in Role:
        code = _call_with(channel, path, method, auth(role))
        if role in allowed:
            assert code not in {
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
            }, (role, code)
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (role, code)
