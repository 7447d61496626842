"""Spending bonus points through the receipt lifecycle (spec §21) on a real SQLite file and a
real PostgreSQL server: shown by Calculate, debited once and atomically by Confirm, given back
in proportion by refunds, refused (and nothing written) when the points are gone."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service.app.member_view import member_offers
from service.app.points_jobs import run_points_expiry
from service.app.unit_of_work import UnitOfWork
from service.cache.sync import ChangeFollower
from service.engine.points_balance import FOREVER, Lifetime
from service.errors import FailedPrecondition, InvalidArgument
from service.store.models import OutboxRow, PointsLedgerRow
from service.store.points_repo import accrue, points_position
from tests.integration.receipt_support import (
    SETTINGS,
    SHOWCASE_MEMBER,
    Register,
    ledger_sum,
    open_register,
    row_counts,
    showcase_receipt,
)


def give_points(register: Register, points: int, available_at: datetime | None = None) -> None:
    """An accrual from outside the receipts (a welcome bonus), spendable at `available_at`."""
    now = datetime.now(UTC)
    lifetime = FOREVER if available_at is None else Lifetime(activation=available_at - now)
    with UnitOfWork(register.sessions, register.cache.members_changed, now=now) as uow:
        uow.lock_members([SHOWCASE_MEMBER])
        accrue(uow.session, SHOWCASE_MEMBER, None, {"WELCOME": points}, now, lifetime)
        uow.members_changed([SHOWCASE_MEMBER])
        uow.commit()


def pending_accruals(register: Register) -> Register:
    """A replica on the same store whose confirms accrue points spendable only a day later,
    so that what a test spends comes from the points it gave."""
    return open_register(register.sessions, replace(SETTINGS, points_activation_delay_s=86400))


def kinds(register: Register) -> list[tuple[str, int]]:
    with register.sessions() as session:
        rows = session.execute(
            select(PointsLedgerRow.kind, PointsLedgerRow.points)
            .where(PointsLedgerRow.member_id == SHOWCASE_MEMBER)
            .order_by(PointsLedgerRow.id)
        )
        return [(r.kind, r.points) for r in rows]


def test_calculate_shows_the_points_per_line_and_writes_nothing(register: Register) -> None:
    give_points(register, 2000)
    before = row_counts(register.sessions)
    shown = register.calculate(showcase_receipt("R-P-SHOW"), points=1500).result
    assert (shown.points_requested, shown.points_available) == (1500, 2000)
    assert shown.total_points_spent == 1500 == sum(line.points_spent for line in shown.lines)
    assert shown.total_points_value == 1500 and shown.point_value == 1
    assert all(line.points_value == line.points_spent for line in shown.lines)
    assert row_counts(register.sessions) == before


def test_confirm_debits_the_points_shown_once(register: Register) -> None:
    give_points(register, 2000)
    receipt = showcase_receipt("R-P-ONCE")
    token = register.calculate(receipt, points=1500).confirmation_token
    first = register.confirm(receipt, token)
    assert first.result.total_points_spent == 1500
    assert first.points_balance == 2000 - 1500 + first.result.total_points
    counts = row_counts(register.sessions)
    again = register.confirm(receipt, token)
    assert again.replayed and again.result == first.result
    assert row_counts(register.sessions) == counts
    assert ("spend", -1500) in kinds(register)
    assert ledger_sum(register.sessions, SHOWCASE_MEMBER) == first.points_balance


def test_points_gone_since_the_calculation_refuse_the_confirm_and_write_nothing(
    register: Register,
) -> None:
    give_points(register, 1000)
    register = pending_accruals(register)
    first, second = showcase_receipt("R-P-A"), showcase_receipt("R-P-B")
    token_a = register.calculate(first, points=800).confirmation_token
    token_b = register.calculate(second, points=800).confirmation_token
    register.confirm(first, token_a)
    counts = row_counts(register.sessions)
    with pytest.raises(FailedPrecondition) as refused:
        register.confirm(second, token_b)
    assert refused.value.reason == "POINTS_INSUFFICIENT"
    assert row_counts(register.sessions) == counts
    # the register calculates again and spends what is left
    again = register.calculate(second, spend_max=True)
    assert again.result.points_available == 200
    confirmed = register.confirm(second, again.confirmation_token)
    assert confirmed.result.total_points_spent == 200


def test_concurrent_confirms_of_one_member_never_take_the_balance_below_zero(
    register: Register,
) -> None:
    """Two replicas of the store, eight receipts spending 300 of 1000 points each."""
    give_points(register, 1000)
    replicas = [pending_accruals(register), pending_accruals(register)]
    receipts = [showcase_receipt(f"R-P-RACE-{n}", coffee=False) for n in range(8)]
    tokens = [register.calculate(r, points=300).confirmation_token for r in receipts]
    start = threading.Barrier(len(receipts))

    def confirm(index: int) -> str:
        start.wait()
        try:
            replicas[index % 2].confirm(receipts[index], tokens[index])
        except FailedPrecondition as refused:
            return refused.reason
        return "confirmed"

    with ThreadPoolExecutor(len(receipts)) as pool:
        outcomes = Counter(pool.map(confirm, range(len(receipts))))
    assert outcomes == {"confirmed": 3, "POINTS_INSUFFICIENT": 5}
    spent = -sum(points for kind, points in kinds(register) if kind == "spend")
    assert spent == 900
    with register.sessions() as session:
        position = points_position(session, SHOWCASE_MEMBER, datetime.now(UTC))
    assert position.available == 100


def test_refunds_give_back_spent_points_in_proportion_and_never_more(register: Register) -> None:
    give_points(register, 5000)
    receipt = showcase_receipt("R-P-REFUND", coffee=False)
    confirmed = register.confirm(
        receipt, register.calculate(receipt, points=4000).confirmation_token
    )
    spent = {line.line_id: line.points_spent for line in confirmed.result.lines}
    milk = "2"  # 2 pieces
    assert spent[milk] > 0
    one = register.refund("RF-P-1", receipt.receipt_id, {milk: 1000})
    two = register.refund("RF-P-2", receipt.receipt_id, {milk: 1000})
    assert one.lines[0].points_returned + two.lines[0].points_returned == spent[milk]
    assert abs(one.lines[0].points_returned - two.lines[0].points_returned) <= 1
    rest = register.refund("RF-P-3", receipt.receipt_id, full=True)
    returned = one.total_points_returned + two.total_points_returned + rest.total_points_returned
    assert returned == confirmed.result.total_points_spent
    assert rest.points_balance == ledger_sum(register.sessions, SHOWCASE_MEMBER)
    assert rest.points_balance == 5000  # every accrual taken back, every spent point returned
    again = register.refund("RF-P-2", receipt.receipt_id, {milk: 1000})
    assert again.replayed and again.total_points_returned == two.total_points_returned


def test_accrued_points_wait_for_the_activation_delay(register: Register) -> None:
    delayed = open_register(register.sessions, replace(SETTINGS, points_activation_delay_s=3600))
    receipt = showcase_receipt("R-P-DELAY")
    confirmed = delayed.confirm(receipt)
    accrued = confirmed.result.total_points
    assert accrued > 0
    now = datetime.now(UTC)
    with register.sessions() as session:
        position = points_position(session, SHOWCASE_MEMBER, now)
        later = points_position(session, SHOWCASE_MEMBER, now + timedelta(hours=2))
    assert (position.available, position.pending) == (0, accrued)
    assert (later.available, later.pending) == (accrued, 0)
    shown = delayed.calculate(showcase_receipt("R-P-DELAY-2"), spend_max=True).result
    assert (shown.points_available, shown.total_points_spent) == (0, 0)


def test_a_refund_of_pending_points_nets_out_before_they_activate(register: Register) -> None:
    delayed = open_register(register.sessions, replace(SETTINGS, points_activation_delay_s=3600))
    receipt = showcase_receipt("R-P-PENDING")
    delayed.confirm(receipt)
    delayed.refund("RF-P-PENDING", receipt.receipt_id, full=True)
    with register.sessions() as session:
        position = points_position(session, SHOWCASE_MEMBER, datetime.now(UTC))
    assert (position.balance, position.available, position.pending) == (0, 0, 0)


def test_the_member_lookup_shows_available_and_pending_points(register: Register) -> None:
    give_points(register, 700)
    give_points(register, 300, available_at=datetime.now(UTC) + timedelta(days=1))
    member = register.cache.member(SHOWCASE_MEMBER)
    assert member is not None
    snapshot = register.cache.snapshot
    found = member_offers(
        UnitOfWork(register.sessions), snapshot, member, datetime.now(UTC), []
    ).points
    assert (found.balance, found.available, found.pending) == (1000, 700, 300)


@pytest.mark.parametrize(
    ("points", "spend_max", "field"),
    [
        (-1, False, "points_to_spend"),
        (10**13, False, "points_to_spend"),
        (5, True, "points_to_spend"),
    ],
)
def test_bad_point_amounts_are_invalid_and_change_nothing(
    register: Register, points: int, spend_max: bool, field: str
) -> None:
    before = row_counts(register.sessions)
    with pytest.raises(InvalidArgument) as refused:
        register.calculate(showcase_receipt("R-P-BAD"), points=points, spend_max=spend_max)
    assert refused.value.field == field
    assert row_counts(register.sessions) == before


def test_an_anonymous_receipt_cannot_spend_points(register: Register) -> None:
    receipt = showcase_receipt("R-P-ANON")
    receipt.ClearField("member")
    with pytest.raises(InvalidArgument) as refused:
        register.calculate(receipt, spend_max=True)
    assert refused.value.field == "spend_max_points"


# --- expiry -------------------------------------------------------------------------------


def expiring(register: Register) -> Register:
    """A replica whose accruals expire 10 days after the confirm."""
    return open_register(register.sessions, replace(SETTINGS, points_expiry_days=10))


def events_of(register: Register, event_type: str) -> list[dict[str, object]]:
    with register.sessions() as session:
        rows = session.execute(
            select(OutboxRow.payload).where(
                OutboxRow.member_id == SHOWCASE_MEMBER, OutboxRow.event_type == event_type
            )
        )
        return [r.payload for r in rows]


def run_expiry(register: Register, now: datetime) -> int:
    def units() -> UnitOfWork:
        return UnitOfWork(register.sessions, register.cache.members_changed, now=now)

    return run_points_expiry(units, timedelta(days=3))


def test_points_expire_are_announced_before_and_recorded_after(register: Register) -> None:
    receipt = showcase_receipt("R-P-EXPIRE")
    earned = expiring(register).confirm(receipt).result.total_points
    start = datetime.now(UTC)
    assert run_expiry(register, start) == 0, "nothing enters the 3-day window yet"
    assert run_expiry(register, start + timedelta(days=8)) == 1
    assert run_expiry(register, start + timedelta(days=8, hours=1)) == 0, "announced once"
    [event] = events_of(register, "POINTS_EXPIRING_SOON")
    assert event["points"] == earned
    member = register.cache.member(SHOWCASE_MEMBER)
    assert member is not None
    view = member_offers(
        UnitOfWork(register.sessions),
        register.cache.snapshot,
        member,
        start + timedelta(days=8),
        [],
        expiring_soon=timedelta(days=3),
    ).points
    assert view.expiring_soon == earned
    # after the expiry: gone from the balance, and recorded once
    later = start + timedelta(days=11)
    run_expiry(register, later)
    run_expiry(register, later + timedelta(hours=1))
    assert ("expiry", -earned) in kinds(register)
    assert [k for k, _ in kinds(register)].count("expiry") == 1
    with register.sessions() as session:
        assert points_position(session, SHOWCASE_MEMBER, later).balance == 0
    assert ledger_sum(register.sessions, SHOWCASE_MEMBER) == 0


class Switchable:
    """Sessions on the store until it is cut off: then every new session fails as a store that
    is down does."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self._sessions = sessions
        self.cut = False
        self.asked_while_cut = 0

    def __call__(self) -> Session:
        if self.cut:
            self.asked_while_cut += 1
            raise OperationalError("connect", {}, Exception("the store is unreachable"))
        return self._sessions()


def test_calculate_spends_the_cached_points_with_the_store_unreachable(
    register: Register,
) -> None:
    """No store read on Calculate with points (issue #16): the member's lots ride in the
    cache, and what it says is what the store says."""
    store = Switchable(register.sessions)
    replica = open_register(store)  # whose store can be cut off
    give_points(register, 2000, available_at=datetime.now(UTC) - timedelta(hours=1))
    give_points(register, 500, available_at=datetime.now(UTC) + timedelta(days=1))  # pending
    warm = replica.calculate(showcase_receipt("R-P-WARM"), points=1500).result  # in its cache
    store.cut = True
    shown = replica.calculate(showcase_receipt("R-P-CUT"), points=1500).result
    store.cut = False
    assert store.asked_while_cut == 0
    with register.sessions() as session:
        available = points_position(session, SHOWCASE_MEMBER, datetime.now(UTC)).available
    assert shown.points_available == warm.points_available == available == 2000
    assert shown.total_points_spent == 1500


def test_calculate_sees_a_confirm_on_another_replica_through_the_change_feed(
    register: Register,
) -> None:
    """The points a confirm spends on one replica are gone from another's cache once it has
    followed the change feed, not before it asks the store."""
    give_points(register, 2000)
    other = open_register(register.sessions)
    follower = ChangeFollower(register.sessions, other.cache)
    follower.poll_once()  # from where the feed is now
    before = other.calculate(showcase_receipt("R-P-OTHER"), points=1500).result
    assert before.points_available == 2000
    receipt, till = showcase_receipt("R-P-SPEND"), pending_accruals(register)
    till.confirm(receipt, till.calculate(receipt, points=1500).confirmation_token)
    stale = other.calculate(showcase_receipt("R-P-STALE"), points=1500).result
    assert stale.points_available == 2000, "from memory: the feed not followed yet"
    follower.poll_once()
    with register.sessions() as session:
        available = points_position(session, SHOWCASE_MEMBER, datetime.now(UTC)).available
    shown = other.calculate(showcase_receipt("R-P-AFTER"), points=1500).result
    assert shown.points_available == available == 500
