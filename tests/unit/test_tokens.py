"""Confirmation tokens: any replica with the secret confirms exactly what was shown."""

from __future__ import annotations

import pytest

from loyalty.v1 import receipt_pb2
from service.api.tokens import TokenSigner
from service.engine.model import UsageCharge
from service.errors import InvalidArgument


def a_receipt() -> receipt_pb2.Receipt:
    receipt = receipt_pb2.Receipt(receipt_id="R1", store_id="S001")
    receipt.member.card_number = "2000000000001"
    for line_id, sku in (("1", "MILK"), ("2", "BREAD")):
        line = receipt.lines.add(line_id=line_id, sku=sku, quantity=1000, price=100)
        line.amount = 100
    return receipt


def a_result() -> receipt_pb2.ReceiptResult:
    result = receipt_pb2.ReceiptResult(
        receipt_id="R1", total_amount=200, total_discount=15, total_paid=185
    )
    result.sale_time.seconds = 1_790_000_000
    return result


def test_a_token_made_on_one_replica_verifies_on_another_with_the_same_secret() -> None:
    usage = (UsageCharge("P1", "OFFER", 1),)
    token = TokenSigner("s3cret").sign(a_receipt(), a_result(), usage)
    payload = TokenSigner("s3cret").verify(a_receipt(), token)
    assert payload.result == a_result()
    assert [(u.offer_id, u.period_key, u.used) for u in payload.usage] == [("P1", "OFFER", 1)]


def test_the_order_of_lines_does_not_change_the_receipt() -> None:
    token = TokenSigner("s").sign(a_receipt(), a_result(), ())
    reordered = a_receipt()
    first, second = list(reordered.lines)
    del reordered.lines[:]
    reordered.lines.extend([second, first])
    assert TokenSigner("s").verify(reordered, token).result.receipt_id == "R1"


def test_an_altered_result_is_refused() -> None:
    token = bytearray(TokenSigner("s").sign(a_receipt(), a_result(), ()))
    token[-1] ^= 0x01
    with pytest.raises(InvalidArgument, match="altered"):
        TokenSigner("s").verify(a_receipt(), bytes(token))


def test_a_token_of_another_secret_is_refused() -> None:
    token = TokenSigner("one").sign(a_receipt(), a_result(), ())
    with pytest.raises(InvalidArgument, match="altered"):
        TokenSigner("two").verify(a_receipt(), token)


def test_a_receipt_changed_since_the_calculation_is_refused() -> None:
    token = TokenSigner("s").sign(a_receipt(), a_result(), ())
    changed = a_receipt()
    changed.lines[0].quantity = 2000
    with pytest.raises(InvalidArgument, match="differs"):
        TokenSigner("s").verify(changed, token)


@pytest.mark.parametrize("token", [b"", b"\x01", b"\x02" + b"x" * 40])
def test_a_missing_or_malformed_token_is_refused(token: bytes) -> None:
    with pytest.raises(InvalidArgument) as caught:
        TokenSigner("s").verify(a_receipt(), token)
    assert caught.value.field == "confirmation_token"
