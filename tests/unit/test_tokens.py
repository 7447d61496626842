"""Confirmation tokens: any replica with the secret confirms exactly what was shown."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from loyalty.v1 import receipt_pb2
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
