"""The sale time of a receipt, at Calculate and at Confirm: at most the configured window in
the past (registers that were offline send late, not years late), at most 24 h ahead."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from loyalty.v1 import receipt_pb2
from service.api.receipts import ReceiptServicer
from service.errors import FailedPrecondition, InvalidArgument
from tests.integration.receipt_support import (
    SETTINGS,
    Register,
    row_counts,
    showcase_receipt,
)

WINDOW = timedelta(seconds=SETTINGS.max_sale_time_age_s)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# Tokens outlive the window here (by default they expire after 24 h, before it), so that the
# window is what refuses a late confirm.
LONG_LIVED_TOKENS = replace(SETTINGS, token_ttl_s=2 * SETTINGS.max_sale_time_age_s)


def clocked(register: Register, clock: Clock) -> Register:
    servicer = ReceiptServicer(LONG_LIVED_TOKENS, register.cache, clock, sessions=register.sessions)
    return Register(servicer, register.cache, register.sessions)


def sold_at(receipt_id: str, moment: datetime) -> receipt_pb2.Receipt:
    receipt = showcase_receipt(receipt_id)
    receipt.sale_time.FromDatetime(moment)
    return receipt


def refused_field(call: object, *args: object) -> str:
    with pytest.raises(InvalidArgument) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.field


def test_the_window_is_72_hours_by_default() -> None:
    assert timedelta(seconds=SETTINGS.max_sale_time_age_s) == timedelta(hours=72)


def test_a_receipt_from_the_edge_of_the_window_is_calculated_an_older_one_refused(
    register: Register,
) -> None:
    clock = Clock(datetime.now(UTC))
    till = clocked(register, clock)
    till.calculate(sold_at("R-EDGE", clock.now - WINDOW))
    for moment in (clock.now - WINDOW - timedelta(seconds=1), datetime(1970, 1, 1, tzinfo=UTC)):
        assert refused_field(till.calculate, sold_at("R-OLD", moment)) == "receipt.sale_time"


def test_a_token_whose_sale_time_left_the_window_is_not_confirmed(register: Register) -> None:
    clock = Clock(datetime.now(UTC))
    till = clocked(register, clock)
    receipt = sold_at("R-LATE", clock.now - WINDOW + timedelta(minutes=1))
    token = till.calculate(receipt).confirmation_token
    before = row_counts(register.sessions)
    clock.now += timedelta(days=3)
    assert refused_field(till.confirm, receipt, token) == "receipt.sale_time"
    assert row_counts(register.sessions) == before


def test_a_receipt_without_a_sale_time_is_sold_now_and_its_token_ages_too(
    register: Register,
) -> None:
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    till = clocked(register, clock)
    receipt = showcase_receipt("R-NOW")
    shown = till.calculate(receipt)
    assert shown.result.sale_time.ToDatetime(UTC) == clock.now
    clock.now += WINDOW + timedelta(seconds=1)
    assert refused_field(till.confirm, receipt, shown.confirmation_token) == "receipt.sale_time"
    clock.now -= timedelta(seconds=2)
    assert not till.confirm(receipt, shown.confirmation_token).replayed


def test_a_confirmed_receipt_is_still_replayed_after_the_window(register: Register) -> None:
    """A register that retries a confirm it already made gets the stored answer, however
    late: the window keeps old benefits from being committed, not answers from being read."""
    clock = Clock(datetime.now(UTC))
    till = clocked(register, clock)
    receipt = showcase_receipt("R-RETRY")
    token = till.calculate(receipt).confirmation_token
    first = till.confirm(receipt, token)
    clock.now += timedelta(days=30)
    again = till.confirm(receipt, token)
    assert again.replayed
    assert again.result == first.result


def test_at_the_end_of_the_calendar_a_sale_time_is_refused_by_name_not_crashed(
    register: Register,
) -> None:
    """A clock a day before 9999-12-31: local dates of a sale time 24 h ahead would not
    exist, so such a sale time is refused like any other out of range."""
    clock = Clock(datetime(9999, 12, 30, 0, 0, tzinfo=UTC))
    till = clocked(register, clock)
    receipt = sold_at("R-END", clock.now + timedelta(hours=23))
    assert till.confirm(receipt).result.sale_time.ToDatetime(UTC) == receipt.sale_time.ToDatetime(
        UTC
    )
    clock.now = datetime(9999, 12, 30, 12, 0, tzinfo=UTC)
    late = sold_at("R-END-2", clock.now + timedelta(hours=23))
    assert refused_field(till.calculate, late) == "receipt.sale_time"


def test_an_expired_token_still_replays_a_confirm_already_made_and_commits_nothing_new(
    register: Register,
) -> None:
    """Tokens live 24 h by default: past that a register recalculates, but a retry of a
    confirm it made still gets the stored answer."""
    clock = Clock(datetime.now(UTC))
    servicer = ReceiptServicer(SETTINGS, register.cache, clock, sessions=register.sessions)
    till = Register(servicer, register.cache, register.sessions)
    made, fresh = showcase_receipt("R-TTL-1"), showcase_receipt("R-TTL-2")
    first = till.confirm(made, till.calculate(made).confirmation_token)
    token = till.calculate(made).confirmation_token
    unused = till.calculate(fresh).confirmation_token
    clock.now += timedelta(seconds=SETTINGS.token_ttl_s + 1)
    again = till.confirm(made, token)
    assert again.replayed and again.result == first.result
    before = row_counts(register.sessions)
    with pytest.raises(FailedPrecondition) as refused:
        till.confirm(fresh, unused)
    assert refused.value.reason == "TOKEN_EXPIRED"
    assert row_counts(register.sessions) == before
