"""spec §21: a member's points at an instant, replayed from the ledger lot by lot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.engine.points_balance import (
    ACCRUAL,
    EXPIRY,
    NO_POINTS,
    RETURN,
    REVERSAL,
    SPEND,
    Lot,
    Movement,
    PointsHolding,
    points_position,
    replay,
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


def test_folding_joins_the_spendable_lots_of_one_kind_and_expiry() -> None:
    later = T + 10 * DAY
    holding = PointsHolding(
        (
            Lot(10, ACCRUAL, T - DAY, None, "R1", key=7),
            Lot(20, ACCRUAL, None, later, "R2", key=8),
            Lot(30, ACCRUAL, None, None, "R3", key=9),
            Lot(40, RETURN, None, None, None, key=10),
            Lot(50, ACCRUAL, T + DAY, None, "R4", key=11),  # pending
            Lot(60, ACCRUAL, None, later, "R5"),  # new, not stored yet
            Lot(1, ACCRUAL, T + DAY, None, "R6", key=12),  # pending, another receipt
            Lot(2, ACCRUAL, T + DAY, None, "R4"),  # pending, R4's other offer
        ),
        debt=5,
    )
    assert holding.folded(T) == PointsHolding(
        (
            Lot(40, ACCRUAL, None, None, None, key=7),  # where R1 was, its row
            Lot(80, ACCRUAL, None, later, None, key=8),
            Lot(40, RETURN, None, None, None, key=10),
            Lot(52, ACCRUAL, T + DAY, None, "R4", key=11),
            Lot(1, ACCRUAL, T + DAY, None, "R6", key=12),
        ),
        debt=5,
    )
    alone = PointsHolding((Lot(10, ACCRUAL, None, None, "R1"), Lot(5, ACCRUAL, None, later, "R2")))
    assert alone.folded(T) is alone, "a lot alone of its kind and expiry keeps its receipt"
    assert NO_POINTS.folded(T) is NO_POINTS


def test_a_reversal_of_a_folded_receipt_takes_from_the_lot_of_its_expiry() -> None:
    ten, twenty = T + 10 * DAY, T + 20 * DAY
    ledger = [
        accrual(100, expires_at=ten, receipt_id="R1"),
        accrual(100, expires_at=twenty, receipt_id="R2"),
        accrual(100, expires_at=twenty, receipt_id="R3"),  # R2 and R3 fold
        Movement(REVERSAL, -100, T + DAY, receipt_id="R2"),
    ]
    holding, _ = replay(ledger)
    assert [(lot.left, lot.expires_at) for lot in holding.lots] == [(100, ten), (100, twenty)]
    assert points_position(ledger, ten).available == 100, "R1's 100 expired, R3's are left"


def test_the_one_case_a_refund_takes_from_other_points_than_before_folding() -> None:
    """R1's points (never expiring) were spent in part, and the member holds points that
    expire, older in the ledger than R2's. Before folding, the reversal took R1's 30 left,
    then 70 from the oldest lot with points: the expiring one, so 100 were left on day 10.
    Now R1's 30 cannot be told from R2's and the 100 come from the points of R1's expiry.
    The refund takes back as much and the balance after it is the same; only which of the
    points left expire later differs (docs/points.md)."""
    ten = T + 10 * DAY
    ledger = [
        accrual(100, receipt_id="R1"),
        Movement(SPEND, -70, T),
        Movement(RETURN, 100, T, expires_at=ten),  # given back by another refund
        accrual(100, T + DAY, receipt_id="R2"),  # folds with R1's 30 left
        Movement(REVERSAL, -100, T + 2 * DAY, receipt_id="R1"),
    ]
    holding, _ = replay(ledger)
    assert [(lot.left, lot.expires_at) for lot in holding.lots] == [(30, None), (100, ten)]
    assert points_position(ledger, T + 2 * DAY).balance == 130  # as before folding
    assert points_position(ledger, ten).available == 30  # before folding: 100
    unfolded = NO_POINTS
    for m in ledger:
        unfolded = unfolded.after(m)
    assert unfolded.position(ten) == points_position(ledger, ten), "folded or not, now alike"


never_expiring = st.lists(
    st.tuples(
        st.integers(0, 30),  # day of the movement
        st.integers(1, 500),  # points
        st.one_of(st.none(), st.integers(0, 5)),  # activation, days
        st.sampled_from([ACCRUAL, SPEND, REVERSAL]),
        st.integers(0, 9),  # of a reversal: which receipt
    ),
    max_size=40,
)


@given(never_expiring, st.integers(0, 40))
def test_with_points_that_never_expire_folding_changes_no_figure_ever(drawn, day) -> None:
    """The default deployment (points never expire, any activation delay): the folded lots
    give every figure the unfolded ones give, at every instant, refunds of any receipt
    (folded or not, its points spent or not) included, from the last write on."""
    ledger: list[Movement] = []
    earned: dict[str, int] = {}
    for n, (when, points, activation, kind, which) in enumerate(sorted(drawn, key=lambda d: d[0])):
        at = T + when * DAY
        if kind == ACCRUAL:
            available_at = at + activation * DAY if activation else None
            earned[f"R{n}"] = points
            ledger.append(accrual(points, at, available_at=available_at, receipt_id=f"R{n}"))
        elif kind == SPEND and points_position(ledger, at).available >= points:
            ledger.append(Movement(SPEND, -points, at))
        elif kind == REVERSAL and earned:
            receipt = sorted(earned)[which % len(earned)]
            taken = min(points, earned[receipt])
            earned[receipt] -= taken
            if taken:
                ledger.append(Movement(REVERSAL, -taken, at, receipt_id=receipt))
    unfolded = NO_POINTS
    for m in ledger:
        unfolded = unfolded.after(m)
    at = max((m.at for m in ledger), default=T) + day * DAY  # asked after the last write
    assert points_position(ledger, at) == unfolded.position(at)
