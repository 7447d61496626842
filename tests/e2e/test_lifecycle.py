"""The receipt lifecycle over gRPC: calculate, confirm once, refund, and the statuses a
register gets when something is refused (a real server on loopback with the demo data)."""

from __future__ import annotations

import grpc
import pytest

from clients import register_cli
from clients.receipt_format import load_receipt
from loyalty.v1 import receipt_pb2, receipt_pb2_grpc
from service.api.auth import Role
from tests.e2e.conftest import auth
from tests.e2e.statuses import refusal

COFFEE_LINE = "6"  # P-COFFEE: a personalized offer on 3 pieces per member, ever


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> receipt_pb2_grpc.ReceiptServiceStub:
    return receipt_pb2_grpc.ReceiptServiceStub(channel)


def receipt(receipt_id: str, *, coffee: bool = False) -> receipt_pb2.Receipt:
    """The demo receipt under a new id; without its coffee line no limited offer applies."""
    made = load_receipt(register_cli.DEMO_RECEIPT)[0]
    made.receipt_id = receipt_id
    if not coffee:
        kept = [line for line in made.lines if line.line_id != COFFEE_LINE]
        del made.lines[:]
        made.lines.extend(kept)
    return made


def calculate(stub, sent: receipt_pb2.Receipt) -> receipt_pb2.CalculateResponse:
    return stub.Calculate(receipt_pb2.CalculateRequest(receipt=sent), timeout=10, metadata=auth())


def confirm(stub, sent: receipt_pb2.Receipt, token: bytes) -> receipt_pb2.ConfirmResponse:
    request = receipt_pb2.ConfirmRequest(receipt=sent, confirmation_token=token)
    return stub.Confirm(request, timeout=10, metadata=auth())


def refund(stub, refund_id: str, receipt_id: str, lines=None, full=False):
    request = receipt_pb2.RefundRequest(
        refund_id=refund_id, receipt_id=receipt_id, full=full, store_id="S001"
    )
    for line_id, quantity in (lines or {}).items():
        request.lines.add(line_id=line_id, quantity=quantity)
    return stub.Refund(request, timeout=10, metadata=auth())


def test_a_receipt_is_calculated_confirmed_once_and_refunded_in_two_steps(stub) -> None:
    sent = receipt("E2E-1")
    shown = calculate(stub, sent)
    assert shown.confirmation_token

    first = confirm(stub, sent, shown.confirmation_token)
    again = confirm(stub, sent, shown.confirmation_token)
    assert not first.replayed and again.replayed
    assert first.result == again.result == shown.result
    assert first.points_balance == again.points_balance >= shown.result.total_points

    milk = refund(stub, "E2E-1-F1", "E2E-1", {"2": 1000})
    rest = refund(stub, "E2E-1-F2", "E2E-1", full=True)
    assert milk.total_paid + rest.total_paid == shown.result.total_paid
    assert milk.total_points + rest.total_points == shown.result.total_points
    assert rest.points_balance == first.points_balance - shown.result.total_points
    assert refund(stub, "E2E-1-F1", "E2E-1", {"2": 1000}).replayed


def test_the_same_receipt_id_with_other_content_gets_already_exists(stub) -> None:
    sent = receipt("E2E-2")
    confirm(stub, sent, calculate(stub, sent).confirmation_token)
    other = receipt("E2E-2")
    del other.lines[-1]
    with pytest.raises(grpc.RpcError) as refused:
        confirm(stub, other, calculate(stub, other).confirmation_token)
    assert refusal(refused.value)[:2] == (grpc.StatusCode.ALREADY_EXISTS, "RECEIPT_ID_REUSED")


def test_a_token_for_another_receipt_gets_invalid_argument_naming_the_token(stub) -> None:
    token = calculate(stub, receipt("E2E-3")).confirmation_token
    with pytest.raises(grpc.RpcError) as refused:
        confirm(stub, receipt("E2E-4"), token)
    code, _reason, field = refusal(refused.value)
    assert (code, field) == (grpc.StatusCode.INVALID_ARGUMENT, "confirmation_token")


def test_a_used_up_limit_gets_failed_precondition_with_a_reason_to_show(stub) -> None:
    sent = [receipt(f"E2E-LIMIT-{n}", coffee=True) for n in range(4)]
    tokens = [calculate(stub, r).confirmation_token for r in sent]
    for r, token in zip(sent[:3], tokens[:3], strict=True):
        confirm(stub, r, token)
    with pytest.raises(grpc.RpcError) as refused:
        confirm(stub, sent[3], tokens[3])
    code, reason, _field = refusal(refused.value)
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "USAGE_LIMIT_REACHED")
    assert "calculate the receipt again" in refused.value.details()


def test_refund_refusals_have_their_own_statuses(stub) -> None:
    sent = receipt("E2E-5")
    confirm(stub, sent, calculate(stub, sent).confirmation_token)
    cases = [
        (("E2E-5-F", "E2E-NOPE", None, True), (grpc.StatusCode.NOT_FOUND, "RECEIPT_NOT_FOUND")),
        (
            ("E2E-5-F", "E2E-5", {"2": 9000}, False),
            (grpc.StatusCode.FAILED_PRECONDITION, "REFUND_EXCEEDS_PURCHASE"),
        ),
    ]
    for args, expected in cases:
        with pytest.raises(grpc.RpcError) as refused:
            refund(stub, *args)
        assert refusal(refused.value)[:2] == expected
    with pytest.raises(grpc.RpcError) as refused:
        refund(stub, "", "E2E-5", full=True)
    assert refusal(refused.value)[::2] == (grpc.StatusCode.INVALID_ARGUMENT, "refund_id")


def test_only_registers_may_confirm(stub) -> None:
    sent = receipt("E2E-6")
    token = calculate(stub, sent).confirmation_token
    request = receipt_pb2.ConfirmRequest(receipt=sent, confirmation_token=token)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Confirm(request, timeout=10, metadata=auth(Role.CUSTOMER_SERVICES))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
