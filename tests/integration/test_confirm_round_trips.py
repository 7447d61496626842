"""How often one confirm waits on PostgreSQL, counted on the wire (tests/wire.py) in front of a
real server: a till waits on every one of these while the customer pays (docs/operations.md,
"Confirms: statements and round trips")."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from loyalty.v1 import receipt_pb2
from service.deadline import set_call_deadline
from service.demo_data.generate import WELCOME_OFFER
from service.store.models import MemberRow
from tests.integration.receipt_support import (
    SHOWCASE_MEMBER,
    Register,
    coupon_receipt,
    showcase_receipt,
)
from tests.wire import WireCounter

pytestmark = pytest.mark.postgres


CHIPS_LINE = "4"  # C-CHIPS-FOOD grants a chip on it


def _anonymous(receipt: receipt_pb2.Receipt) -> receipt_pb2.Receipt:
    receipt.ClearField("member")
    return receipt


def _without(receipt: receipt_pb2.Receipt, *line_ids: str) -> receipt_pb2.Receipt:
    kept = [line for line in receipt.lines if line.line_id not in line_ids]
    del receipt.lines[:]
    receipt.lines.extend(kept)
    return receipt


def _round_trips_of_confirm(
    register: Register, wire: WireCounter, receipt: receipt_pb2.Receipt, *, points: int = 0
) -> int:
    """The round trips of confirming `receipt` (spending `points`), on a warm connection
    and a warm cache (a confirm of another receipt first; the cache's own reads of the
    member are not the confirm's)."""
    warm = receipt_pb2.Receipt()
    warm.CopyFrom(receipt)
    warm.receipt_id = receipt.receipt_id + "-WARM"
    register.confirm(warm)
    shown = register.calculate(receipt, points=points)
    assert shown.result.total_points_spent == points
    with wire.counting() as seen:
        confirmed = register.confirm(receipt, shown.confirmation_token)
    assert not confirmed.replayed
    return seen[0]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: showcase_receipt("R-ALL"), id="usage-points-chips"),
        pytest.param(lambda: _without(showcase_receipt("R-UP"), CHIPS_LINE), id="usage-points"),
        pytest.param(lambda: showcase_receipt("R-P", coffee=False), id="points-chips"),
        pytest.param(
            lambda: _without(showcase_receipt("R-P", coffee=False), CHIPS_LINE), id="points"
        ),
        pytest.param(lambda: _anonymous(showcase_receipt("R-ANON")), id="anonymous"),
    ],
)
def test_a_confirm_waits_twice_on_the_database(wired, make) -> None:
    """Everything that decides nothing goes with the claim, the rest with the COMMIT
    (before: 6 round trips for a member's receipt that grants chips, 3 without)."""
    register, wire = wired
    assert _round_trips_of_confirm(register, wire, make()) == 2


def test_a_confirm_with_a_coupon_code_waits_twice_too(wired) -> None:
    """The code's use is counted with the claim and judged after it (before: 2 more)."""
    register, wire = wired
    receipt = coupon_receipt(register, "R-COUPON")
    shown = register.calculate(receipt)
    applied = {b.offer_id for line in shown.result.lines for b in line.benefits}
    assert WELCOME_OFFER in applied, "the code must apply for the coupon path to be measured"
    assert _round_trips_of_confirm(register, wire, receipt) == 2


def test_a_confirm_that_spends_points_waits_twice_too(wired) -> None:
    """The available points are read with the claim, under the member's lock (before: 7)."""
    register, wire = wired
    assert _round_trips_of_confirm(register, wire, showcase_receipt("R-SPEND"), points=100) == 2


@pytest.mark.parametrize("resent", [False, True], ids=["first-attempt", "resent"])
def test_a_repeat_waits_for_its_claim_and_its_rollback(wired, resent: bool) -> None:
    """Resent or not, a repeat waits twice; resent, its first round trip is the claim alone."""
    register, wire = wired
    receipt = showcase_receipt("R-AGAIN")
    token = register.calculate(receipt).confirmation_token
    first = register.confirm(receipt, token)
    register.cache.member(SHOWCASE_MEMBER)  # the confirm made the cache read them again
    with wire.counting() as seen:
        again = register.confirm(receipt, token, resent=resent)
    assert again.replayed and again.result == first.result
    assert seen[0] == 2


def test_a_resent_confirm_of_a_new_receipt_waits_once_more(wired) -> None:
    """The claim alone first, then the rest, then the COMMIT."""
    register, wire = wired
    receipt = showcase_receipt("R-RESENT")
    warm = receipt_pb2.Receipt()
    warm.CopyFrom(receipt)
    warm.receipt_id = "R-RESENT-WARM"
    register.confirm(warm)
    token = register.calculate(receipt).confirmation_token
    with wire.counting() as seen:
        confirmed = register.confirm(receipt, token, resent=True)
    assert not confirmed.replayed
    assert seen[0] == 3


@pytest.fixture
def deadline() -> Iterator[None]:
    """The call has 5 s left (as a register's confirm always has a deadline)."""
    set_call_deadline(5.0)
    yield None
    set_call_deadline(None)


@pytest.mark.usefixtures("deadline")
def test_a_confirm_with_a_deadline_sends_its_bounds_with_the_claim(wired) -> None:
    """The transaction's statement_timeout and lock_timeout go after its BEGIN in the first
    round trip (before: a round trip of their own)."""
    register, wire = wired
    assert _round_trips_of_confirm(register, wire, showcase_receipt("R-BOUND")) == 2


def test_a_confirm_waiting_on_the_members_lock_is_cut_short_by_its_deadline(wired) -> None:
    """The bounds sent with the claim hold for its statements: a member locked by another
    transaction makes the confirm fail with a lock timeout, not wait for ever."""
    register, _wire = wired
    receipt = showcase_receipt("R-LOCKED")
    token = register.calculate(receipt).confirmation_token
    with register.sessions() as holder:
        holder.execute(
            select(MemberRow).where(MemberRow.id == SHOWCASE_MEMBER).with_for_update()
        ).one()
        set_call_deadline(0.5)
        try:
            with pytest.raises(OperationalError) as failed:
                register.confirm(receipt, token)
        finally:
            set_call_deadline(None)
        holder.rollback()
    cut_short = (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)
    assert isinstance(failed.value.orig, cut_short), failed.value
    assert register.confirm(receipt, token).result.total_paid  # the lock released: it commits
