"""Confirmation tokens: any replica with the secret confirms exactly what was shown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from loyalty.v1 import receipt_pb2
from service.api.convert import set_timestamp, token_fingerprint
from service.api.tokens import (
    DEVELOPMENT_SECRET,
    TokenKey,
    TokenSigner,
    UnsafeConfiguration,
    signer_from_settings,
)
from service.config import Settings
from service.engine.model import UsageCharge
from service.errors import FailedPrecondition, InvalidArgument


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


# --- expiry and key rotation ---------------------------------------------------------------

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
STRONG = "a" * 32
NEXT = "b" * 32


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_token_expires_after_its_time_to_live_and_says_calculate_again() -> None:
    clock = Clock()
    signer = TokenSigner(STRONG, ttl=timedelta(hours=24), clock=clock)
    token = signer.sign(a_receipt(), a_result(), ())
    clock.now = START + timedelta(hours=23, minutes=59)
    assert signer.verify(a_receipt(), token).result.receipt_id == "R1"
    clock.now = START + timedelta(hours=24, seconds=1)
    with pytest.raises(FailedPrecondition, match="calculate the receipt again") as caught:
        signer.verify(a_receipt(), token)
    assert caught.value.reason == "TOKEN_EXPIRED"


def test_a_token_carries_the_key_id_that_signed_it() -> None:
    token = TokenSigner(TokenKey("k2026-12", STRONG)).sign(a_receipt(), a_result(), ())
    assert token[1] == len("k2026-12") and token[2:10] == b"k2026-12"


def test_after_rotation_tokens_of_the_previous_key_verify_until_its_end() -> None:
    clock = Clock()
    old = TokenSigner(TokenKey("k1", STRONG), clock=clock)
    in_flight = old.sign(a_receipt(), a_result(), ())
    rotated = TokenSigner(
        TokenKey("k2", NEXT),
        [TokenKey("k1", STRONG, until=START + timedelta(hours=1))],
        clock=clock,
    )
    assert rotated.verify(a_receipt(), in_flight).result.receipt_id == "R1"
    new = rotated.sign(a_receipt(), a_result(), ())
    with pytest.raises(InvalidArgument, match="not signed by this service"):
        old.verify(a_receipt(), new)  # a replica not yet rotated knows no k2
    clock.now = START + timedelta(hours=1, seconds=1)
    with pytest.raises(FailedPrecondition, match="retired") as caught:
        rotated.verify(a_receipt(), in_flight)
    assert caught.value.reason == "TOKEN_EXPIRED"
    assert rotated.verify(a_receipt(), new).result.receipt_id == "R1"


def test_a_key_id_cannot_be_swapped_to_another_key() -> None:
    """The key id is under the MAC: relabelling a token to another known key fails."""
    signer = TokenSigner(TokenKey("k2", NEXT), [TokenKey("k1", STRONG, until=START)])
    token = bytearray(signer.sign(a_receipt(), a_result(), ()))
    token[3] = ord("1")
    with pytest.raises(InvalidArgument, match="not signed by this service"):
        signer.verify(a_receipt(), bytes(token))


# --- what the server accepts as a secret -----------------------------------------------------


def production(**overrides: object) -> Settings:
    return replace(Settings(), **overrides)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "no token secret"),
        ({"token_secret": "dev-only-change-me"}, "public development secret"),
        ({"token_secret": "x" * 31}, "shorter than 32 bytes"),
        ({"token_secret": STRONG, "token_secret_file": "/x"}, "not both"),
        ({"token_secret_file": "/nonexistent/secret"}, "cannot read --token-secret-file"),
        ({"token_secret": STRONG, "token_previous_secret": "short"}, "shorter than 32"),
        ({"token_secret": STRONG, "token_previous_secret": NEXT}, "--token-previous-key-id"),
        (
            {
                "token_secret": STRONG,
                "token_previous_secret": NEXT,
                "token_previous_key_id": "0",
                "token_previous_until": "tomorrow",
            },
            "ISO 8601",
        ),
    ],
)
def test_a_production_start_refuses_an_unsafe_secret(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(UnsafeConfiguration, match=message):
        signer_from_settings(production(**overrides))


def test_development_mode_signs_with_the_built_in_secret() -> None:
    for settings in (production(development=True), production(demo_data=True)):
        token = signer_from_settings(settings).sign(a_receipt(), a_result(), ())
        assert TokenSigner(DEVELOPMENT_SECRET).verify(a_receipt(), token)


def test_the_secret_and_the_previous_one_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "current").write_text(NEXT + "\n")
    (tmp_path / "previous").write_text(STRONG + "\n")
    settings = production(
        token_secret_file=str(tmp_path / "current"),
        token_key_id="k2",
        token_previous_secret_file=str(tmp_path / "previous"),
        token_previous_key_id="k1",
        token_previous_until="2999-01-01T00:00:00+00:00",
    )
    in_flight = TokenSigner(TokenKey("k1", STRONG)).sign(a_receipt(), a_result(), ())
    signer = signer_from_settings(settings)
    assert signer.verify(a_receipt(), in_flight).result.receipt_id == "R1"
    fresh = signer.sign(a_receipt(), a_result(), ())
    assert TokenSigner(TokenKey("k2", NEXT)).verify(a_receipt(), fresh)


# --- token formats (issue 19: format 3 hashes the receipt as sent) ---------------------------


def numbered_receipt(order: list[int], **fields: object) -> receipt_pb2.Receipt:
    """A receipt of lines "1" to "12" (a register's numbering), sent in the given order."""
    receipt = receipt_pb2.Receipt(receipt_id="R1", store_id="S001", **fields)  # type: ignore[arg-type]
    receipt.member.card_number = "2000000000001"
    for number in order:
        receipt.lines.add(
            line_id=str(number), sku=f"SKU{number}", quantity=1000, price=100 + number,
            amount=100 + number,
        )  # fmt: skip
    return receipt


IN_ORDER = list(range(1, 13))


def test_format_3_is_signed_by_default_and_format_2_on_demand() -> None:
    assert TokenSigner("s").sign(a_receipt(), a_result(), ())[0] == 3
    old = TokenSigner("s", token_format=2).sign(a_receipt(), a_result(), ())
    assert old[0] == 2
    with pytest.raises(UnsafeConfiguration, match="token-format"):
        TokenSigner("s", token_format=4)


def test_a_token_of_format_2_still_confirms_after_the_upgrade() -> None:
    """A token signed by a replica of the previous version (format 2, its fingerprint a
    sorted copy with the sale time) verifies on this one, reordered lines too."""
    old_replica = TokenSigner("s", token_format=2)
    token = old_replica.sign(numbered_receipt(IN_ORDER), a_result(), ())
    reordered = numbered_receipt(list(reversed(IN_ORDER)))
    assert TokenSigner("s").verify(reordered, token).result.receipt_id == "R1"
    changed = numbered_receipt(IN_ORDER)
    changed.lines[3].amount -= 1
    with pytest.raises(InvalidArgument, match="differs"):
        TokenSigner("s").verify(changed, token)


@pytest.mark.parametrize(
    "order",
    [IN_ORDER, list(reversed(IN_ORDER)), [10, 2, 1, 11, 3, 12, 4, 5, 6, 7, 8, 9]],
    ids=["as numbered", "reversed", "shuffled"],
)
def test_format_3_does_not_depend_on_the_order_of_lines(order: list[int]) -> None:
    signer = TokenSigner("s")
    token = signer.sign(numbered_receipt(order), a_result(), ())
    for confirmed in (IN_ORDER, list(reversed(IN_ORDER)), order):
        assert signer.verify(numbered_receipt(confirmed), token).result.receipt_id == "R1"


@pytest.mark.parametrize(
    "change",
    [
        lambda r: setattr(r.lines[11], "quantity", 2000),
        lambda r: setattr(r.lines[0], "sku", "OTHER"),
        lambda r: setattr(r.lines[5], "line_id", "13"),
        lambda r: r.lines.add(line_id="13", sku="X", quantity=1000, price=1, amount=1),
        lambda r: r.lines.pop(),
        lambda r: setattr(r, "store_id", "S002"),
        lambda r: setattr(r.member, "card_number", "2000000000002"),
        lambda r: r.coupon_codes.append("SUMMER10"),
    ],
    ids=["quantity", "sku", "line id", "a line more", "a line less", "store", "card", "code"],
)
def test_format_3_detects_a_changed_receipt(
    change: Callable[[receipt_pb2.Receipt], object],
) -> None:
    signer = TokenSigner("s")
    token = signer.sign(numbered_receipt(IN_ORDER), a_result(), ())
    changed = numbered_receipt(list(reversed(IN_ORDER)))
    change(changed)
    with pytest.raises(InvalidArgument, match="differs"):
        signer.verify(changed, token)


def test_format_3_leaves_the_sale_time_to_the_result_and_codes_to_their_set() -> None:
    """As with format 2, the sale time of a confirm does not matter (the token's result
    fixes the one the receipt was evaluated at), nor the order or case of the codes."""
    signer = TokenSigner("s")
    sent = numbered_receipt(IN_ORDER, coupon_codes=["summer10", "B-2"])
    token = signer.sign(sent, a_result(), ())
    again = numbered_receipt(list(reversed(IN_ORDER)), coupon_codes=["b-2", "SUMMER10"])
    again.sale_time.seconds = 1_790_000_000
    assert signer.verify(again, token).result.receipt_id == "R1"


def test_the_copy_free_fingerprint_is_the_one_of_the_canonical_copy() -> None:
    """A receipt already in line order without sale time or codes is hashed as sent; the
    same receipt in any other form gives the same fingerprint through the copy."""
    as_sent = token_fingerprint(numbered_receipt(IN_ORDER))
    assert token_fingerprint(numbered_receipt(list(reversed(IN_ORDER)))) == as_sent
    timed = numbered_receipt(IN_ORDER)
    timed.sale_time.seconds = 1_790_000_000
    assert token_fingerprint(timed) == as_sent
    assert as_sent != token_fingerprint(numbered_receipt(IN_ORDER[:-1]))


def test_codes_sent_in_form_are_hashed_as_sent_and_match_any_other_form() -> None:
    """Codes already upper case and in order take the copy-free path; the same codes in
    another order or case, or the lines out of order, give the same fingerprint."""
    in_form = token_fingerprint(numbered_receipt(IN_ORDER, coupon_codes=["B-2", "SUMMER10"]))
    for codes in (["SUMMER10", "B-2"], ["b-2", "summer10"], [" B-2", "SUMMER10"]):
        assert token_fingerprint(numbered_receipt(IN_ORDER, coupon_codes=codes)) == in_form
    reordered = numbered_receipt(list(reversed(IN_ORDER)), coupon_codes=["B-2", "SUMMER10"])
    assert token_fingerprint(reordered) == in_form
    assert in_form != token_fingerprint(numbered_receipt(IN_ORDER, coupon_codes=["B-2"]))
    assert in_form != token_fingerprint(numbered_receipt(IN_ORDER))


def test_a_timestamp_is_set_as_protobuf_sets_it() -> None:
    for moment in (
        datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=3))),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 12, 1, 9, 30),  # naive: UTC
    ):
        ours, library = Timestamp(), Timestamp()
        set_timestamp(ours, moment)
        library.FromDatetime(moment)
        assert (ours.seconds, ours.nanos) == (library.seconds, library.nanos), moment
