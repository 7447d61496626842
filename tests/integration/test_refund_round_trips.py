"""How often one refund waits on PostgreSQL, counted on the wire (tests/wire.py): the
receipt's lock with everything the refund reads of the receipt, then the member's lock with
their balances and counters, then every write with the COMMIT (docs/operations.md, "Refunds:
statements and round trips"). Before, a member's full refund waited 24 times."""

from __future__ import annotations

import pytest

from loyalty.v1 import receipt_pb2
from service.deadline import set_call_deadline
from tests.integration.receipt_support import Register, showcase_receipt
from tests.integration.test_confirm_round_trips import _anonymous, _without
from tests.wire import WireCounter

pytestmark = pytest.mark.postgres
FOOD_LINES = ("4", "5")  # C-CHIPS-FOOD grants a chip on one of them


def _without_chips(receipt_id: str) -> receipt_pb2.Receipt:
    return _without(showcase_receipt(receipt_id), *FOOD_LINES)


def _round_trips_of_refund(
    register: Register, wire: WireCounter, receipt: receipt_pb2.Receipt
) -> int:
    """The round trips of refunding `receipt` in full once confirmed, on a warm connection
    (another receipt confirmed and refunded first)."""
    for sold in (_copy(receipt, "-WARM"), receipt):
        register.confirm(sold, register.calculate(sold).confirmation_token)
    register.refund("F-WARM", receipt.receipt_id + "-WARM", full=True)
    with wire.counting() as seen:
        refunded = register.refund("F-" + receipt.receipt_id, receipt.receipt_id, full=True)
    assert not refunded.replayed and refunded.lines
    return seen[0]


def _copy(receipt: receipt_pb2.Receipt, suffix: str) -> receipt_pb2.Receipt:
    copy = receipt_pb2.Receipt()
    copy.CopyFrom(receipt)
    copy.receipt_id += suffix
    return copy


def test_a_members_refund_waits_three_times(wired) -> None:
    """Points taken back, usage given back, the coupon codes' check, no chips to take."""
    register, wire = wired
    receipt = _without_chips("R-NOCHIPS")
    assert _round_trips_of_refund(register, wire, receipt) == 3


def test_a_refund_that_takes_chips_back_waits_once_more(wired) -> None:
    """The chips' debit is checked before the COMMIT (under the member's lock it holds)."""
    register, wire = wired
    assert _round_trips_of_refund(register, wire, showcase_receipt("R-CHIPS")) == 4


def test_an_anonymous_refund_waits_twice(wired) -> None:
    register, wire = wired
    assert _round_trips_of_refund(register, wire, _anonymous(showcase_receipt("R-ANON"))) == 2


def test_a_repeated_refund_waits_for_its_reads_and_their_rollback(wired) -> None:
    register, wire = wired
    receipt = showcase_receipt("R-AGAIN")
    register.confirm(receipt, register.calculate(receipt).confirmation_token)
    first = register.refund("F-AGAIN", "R-AGAIN", full=True)
    with wire.counting() as seen:
        again = register.refund("F-AGAIN", "R-AGAIN", full=True)
    assert again.replayed and again.lines == first.lines
    assert seen[0] == 2


def test_a_refund_with_a_deadline_sends_its_bounds_with_its_first_reads(wired) -> None:
    register, wire = wired
    receipt = _without_chips("R-BOUND")
    set_call_deadline(5.0)
    try:
        assert _round_trips_of_refund(register, wire, receipt) == 3
    finally:
        set_call_deadline(None)
