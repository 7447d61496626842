"""A member's open lots stay bounded (spec §21, docs/points.md "Folding"): the spendable lots of
one kind and one expiry are folded into one at every write of points, in the store and in the
member's document alike, and refunds take back and give back what they did before. On a real
SQLite file and a real PostgreSQL server: through the confirm and refund use cases for the
member who earns on every receipt, through the writers they call (at chosen times) for
activation and expiry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.app.points_jobs import close_expired_lots
from service.app.receipts import points_changed
from service.app.unit_of_work import UnitOfWork
from service.engine.model import Channel, Member
from service.engine.points_balance import ACCRUAL, FOREVER, Lifetime, Lot, PointsHolding
from service.store.loader import load_member
from service.store.member_repo import save_member
from service.store.models import PointsLedgerRow, PointsLotRow, ReceiptRow, RefundRow
from service.store.points_repo import (
    accrue,
    points_holding,
    points_holdings,
    reverse,
    write_reversal,
)
from tests.integration.receipt_support import (
    SHOWCASE_MEMBER,
    Register,
    ledger_sum,
    showcase_receipt,
)

T = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def stored_and_cached(sessions: sessionmaker[Session], member_id: str) -> PointsHolding:
    """The member's open lots in the store (as their document holds them), checked to be
    what their document holds."""
    with sessions() as session:
        member = load_member(session, member_id)
        stored = points_holdings(session, [member_id]).get(member_id, PointsHolding())
    assert member is not None
    assert member.points == stored, "the document holds the store's open lots"
    return stored


def test_a_member_who_earns_fifty_times_and_never_spends_keeps_one_lot(
    register: Register,
) -> None:
    confirmed = []
    for n in range(50):
        receipt = showcase_receipt(f"R-FOLD-{n:02d}", coffee=False)
        answer = register.confirm(receipt)
        assert answer.result.total_points > 0
        confirmed.append((receipt.receipt_id, answer.result.total_points))
        lots = stored_and_cached(register.sessions, SHOWCASE_MEMBER).lots
        assert len(lots) <= 1, f"after {n + 1} receipts: {lots}"
    holding = stored_and_cached(register.sessions, SHOWCASE_MEMBER)
    balance = ledger_sum(register.sessions, SHOWCASE_MEMBER)
    assert holding.lots[0].left == balance == sum(points for _r, points in confirmed)
    assert holding.lots[0].receipt_id is None, "one lot for all receipts, none's own"

    oldest, oldest_points = confirmed[0]
    refund = register.refund("RF-FOLD-OLD", oldest, full=True)
    assert refund.points_balance == balance - oldest_points
    recent, recent_points = confirmed[-1]
    refund = register.refund("RF-FOLD-NEW", recent, full=True)
    assert refund.points_balance == balance - oldest_points - recent_points
    holding = stored_and_cached(register.sessions, SHOWCASE_MEMBER)
    assert [lot.left for lot in holding.lots] == [refund.points_balance]
    assert holding.debt == 0
    assert ledger_sum(register.sessions, SHOWCASE_MEMBER) == refund.points_balance


class Points:
    """One fresh member's points written as the use cases write them, at chosen times."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.member_id = f"M-{uuid.uuid4().hex[:12]}"
        with sessions() as session:
            save_member(session, Member(self.member_id), now=T)
            session.commit()

    def earn(self, receipt_id: str | None, points: int, at: datetime, life: Lifetime) -> None:
        with UnitOfWork(self.sessions, now=at) as uow:
            uow.lock_members([self.member_id])
            if receipt_id is not None:
                uow.session.add(_receipt(receipt_id, self.member_id, at))
                uow.session.flush()
            holding = accrue(uow.session, self.member_id, receipt_id, {"B1": points}, at, life)
            points_changed(uow, self.member_id, holding)
            uow.commit()

    def take_back(self, receipt_id: str, points: int, at: datetime) -> None:
        refund_id = f"F-{uuid.uuid4().hex[:12]}"
        with UnitOfWork(self.sessions, now=at) as uow:
            uow.lock_members([self.member_id])
            uow.session.add(RefundRow(
                refund_id=refund_id, receipt_id=receipt_id, fingerprint="f", response=b"",
                created_at=at,
            ))  # fmt: skip
            uow.session.flush()
            reversal = reverse(
                uow.batch, self.member_id, receipt_id, refund_id, {"B1": points}, 0, at
            ).value()
            write_reversal(uow.batch, reversal)
            points_changed(uow, self.member_id, reversal.after)
            uow.commit()

    def lots(self) -> tuple[Lot, ...]:
        return stored_and_cached(self.sessions, self.member_id).lots

    def at(self, when: datetime) -> tuple[int, int]:
        with self.sessions() as session:
            position = points_holding(session, self.member_id).position(when)
        return position.available, position.pending

    def expiry_recorded(self) -> int:
        ledger = PointsLedgerRow.__table__
        with self.sessions() as session:
            rows = session.execute(
                select(ledger.c.points).where(
                    ledger.c.member_id == self.member_id, ledger.c.kind == "expiry"
                )
            )
            return -sum(row.points for row in rows)


def _receipt(receipt_id: str, member_id: str, at: datetime) -> ReceiptRow:
    return ReceiptRow(
        receipt_id=receipt_id, store_id="S1", channel=Channel.POS, member_id=member_id,
        sale_time=at, fingerprint="f", response=b"", total_amount=0, total_discount=0,
        total_paid=0, total_points=0, confirmed_at=at,
    )  # fmt: skip


def _id() -> str:
    return f"R-{uuid.uuid4().hex[:12]}"


def test_lots_fold_only_with_lots_of_the_same_expiry_and_each_expires_whole(
    shared_db: sessionmaker[Session],
) -> None:
    points = Points(shared_db)
    ten_days = Lifetime(expiry=10 * DAY)
    first, second = _id(), _id()
    points.earn(None, 100, T, FOREVER)  # a welcome bonus, never expiring
    points.earn(first, 50, T, ten_days)  # two receipts confirmed at one instant
    points.earn(second, 70, T, ten_days)
    points.earn(_id(), 30, T + DAY, FOREVER)  # confirmed before the expiry was configured
    assert [(lot.left, lot.expires_at) for lot in points.lots()] == [
        (130, None),
        (120, T + 10 * DAY),
    ]
    # the first receipt's lot is folded: its points come back from the lot of its expiry,
    # not from the points that never expire
    points.take_back(first, 50, T + 2 * DAY)
    assert [(lot.left, lot.expires_at) for lot in points.lots()] == [
        (130, None),
        (70, T + 10 * DAY),
    ]
    assert points.at(T + 9 * DAY) == (200, 0)
    assert points.at(T + 10 * DAY) == (130, 0), "the second receipt's 70 expire"
    close_expired_lots(lambda: UnitOfWork(shared_db, now=T + 11 * DAY), T + 11 * DAY)
    assert [(lot.left, lot.expires_at) for lot in points.lots()] == [(130, None)]
    assert points.expiry_recorded() == 70


def test_pending_lots_do_not_fold_with_spendable_ones_until_they_activate(
    shared_db: sessionmaker[Session],
) -> None:
    points = Points(shared_db)
    delayed = Lifetime(activation=DAY)
    first, second, third = _id(), _id(), _id()
    points.earn(first, 40, T, delayed)
    points.earn(second, 60, T + timedelta(hours=1), delayed)
    assert [lot.receipt_id for lot in points.lots()] == [first, second], "both pending"
    # a day later the first two are spendable and fold; the third is pending, on its own
    points.earn(third, 25, T + DAY + timedelta(hours=2), delayed)
    lots = points.lots()
    assert [(lot.left, lot.kind, lot.receipt_id, lot.available_at) for lot in lots] == [
        (100, ACCRUAL, None, None),
        (25, ACCRUAL, third, T + 2 * DAY + timedelta(hours=2)),
    ]
    assert points.at(T + DAY + timedelta(hours=2)) == (100, 25)
    # the pending receipt's refund nets out with its own lot, nothing spendable is touched
    points.take_back(third, 25, T + DAY + timedelta(hours=3))
    assert [lot.left for lot in points.lots()] == [100]
    assert points.at(T + 3 * DAY) == (100, 0)
    # a folded receipt's refund takes from the folded lot
    points.take_back(first, 40, T + DAY + timedelta(hours=4))
    assert [(lot.left, lot.receipt_id) for lot in points.lots()] == [(60, None)]


def test_the_expiry_job_folds_what_it_leaves(shared_db: sessionmaker[Session]) -> None:
    points = Points(shared_db)
    points.earn(_id(), 10, T, Lifetime(expiry=DAY))
    points.earn(_id(), 20, T, Lifetime(activation=DAY))
    points.earn(_id(), 30, T + timedelta(hours=1), Lifetime(activation=DAY))
    assert len(points.lots()) == 3
    at = T + 2 * DAY  # the first expired, the other two activated since the last write
    close_expired_lots(lambda: UnitOfWork(shared_db, now=at), at)
    assert [(lot.left, lot.receipt_id) for lot in points.lots()] == [(50, None)]
    assert points.expiry_recorded() == 10


def test_a_member_with_lots_from_before_folding_is_folded_by_their_next_write(
    shared_db: sessionmaker[Session],
) -> None:
    points = Points(shared_db)
    receipts = [_id() for _ in range(12)]
    with shared_db() as session:  # one lot per receipt, as the writes before folding left them
        for receipt_id in receipts:
            session.add(_receipt(receipt_id, points.member_id, T))
            session.add(PointsLotRow(
                member_id=points.member_id, kind=ACCRUAL, points_left=10, available_at=None,
                expires_at=None, receipt_id=receipt_id, created_at=T,
            ))  # fmt: skip
        session.commit()
    points.earn(_id(), 5, T + DAY, FOREVER)
    assert [(lot.left, lot.receipt_id) for lot in points.lots()] == [(125, None)]
