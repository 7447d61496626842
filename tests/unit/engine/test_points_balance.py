"""spec §21: a member's points at an instant, replayed from the ledger lot by lot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.engine.points_balance import (
    ACCRUAL,
    EXPIRY,
    REVERSAL,
    SPEND,
    Movement,
    points_position,
)

T = datetime(2026, 12, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def accrual(points: int, at: datetime = T, **f: object) -> Movement:
    return Movement(ACCRUAL, points, at, **f)  # type: ignore[arg-type]


def test_spending_takes_the_points_that_expire_first() -> None:
    ledger = [
        accrual(100, expires_at=T + 10 * DAY),
        accrual(50),
        Movement(SPEND, -120, T + DAY),
    ]
    later = points_position(ledger, T + 20 * DAY)
    assert (later.available, later.expired) == (30, 0), "the 100 expiring went first"


def test_what_is_left_of_a_lot_expires_with_it() -> None:
    ledger = [accrual(100, expires_at=T + 10 * DAY), Movement(SPEND, -30, T + DAY)]
    before = points_position(ledger, T + 9 * DAY, soon=2 * DAY)
    assert (before.available, before.expiring_soon) == (70, 70)
    after = points_position(ledger, T + 10 * DAY)
    assert (after.available, after.balance, after.expired) == (0, 0, 70)
    assert after.expiry_to_record == 70
    recorded = points_position([*ledger, Movement(EXPIRY, -70, T + 10 * DAY)], T + 11 * DAY)
    assert (recorded.balance, recorded.expiry_to_record) == (0, 0)


def test_points_wait_for_their_activation() -> None:
    ledger = [accrual(100, available_at=T + DAY)]
    assert (points_position(ledger, T).available, points_position(ledger, T).pending) == (0, 100)
    assert points_position(ledger, T + DAY).available == 100


def test_a_reversal_takes_its_own_pending_accrual_first() -> None:
    ledger = [
        accrual(40),
        accrual(100, available_at=T + DAY, receipt_id="R1"),
        Movement(REVERSAL, -100, T, receipt_id="R1"),
    ]
    now = points_position(ledger, T)
    assert (now.available, now.pending) == (40, 0)


def test_earned_points_already_spent_leave_a_debt_the_next_points_pay() -> None:
    ledger = [
        accrual(100, receipt_id="R1"),
        Movement(SPEND, -100, T),
        Movement(REVERSAL, -30, T, receipt_id="R1"),
    ]
    assert points_position(ledger, T).available == -30
    assert points_position([*ledger, accrual(50)], T).available == 20


movements = st.lists(
    st.tuples(
        st.integers(0, 30),  # day of the movement
        st.integers(1, 500),  # points
        st.one_of(st.none(), st.integers(0, 5)),  # activation, days
        st.one_of(st.none(), st.integers(1, 20)),  # validity, days
        st.booleans(),  # a spending (if affordable) rather than an accrual
    ),
    max_size=30,
)


@given(movements, st.integers(0, 60))
def test_checked_spendings_never_take_the_balance_below_zero(drawn, day) -> None:
    """Spendings made only when the points are available (as the confirm checks) keep every
    later position non-negative, and every point is either held or expired."""
    ledger: list[Movement] = []
    earned = spent = 0
    for when, points, activation, validity, spending in sorted(drawn, key=lambda d: d[0]):
        at = T + when * DAY
        if spending:
            if points_position(ledger, at).available >= points:
                ledger.append(Movement(SPEND, -points, at))
                spent += points
            continue
        available_at = at + activation * DAY if activation is not None else None
        expires_at = (available_at or at) + validity * DAY if validity is not None else None
        ledger.append(accrual(points, at, available_at=available_at, expires_at=expires_at))
        earned += points
    position = points_position(ledger, T + day * DAY)
    assert position.available >= 0 and position.pending >= 0
    assert position.balance + position.expired == earned - spent
