"""The points a calculation reads from the cached member (their document) are the store's:
after any sequence of accruals, spendings, refunds, expiry runs and time passing, the
member's document, the store's open lots and a replay of the whole ledger give the same
position at every later instant (spec §21). The store and the replay fold lots alike (at each
write, by the same rule), so they hold as many points of each activation and expiry, and the
store keeps no two spendable lots that could be folded. Random sequences on both backends,
each on a fresh member, one lifetime for all points or a deployment changing it between
receipts, through the writers the use cases call and the expiry job itself."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from service.app.points_jobs import close_expired_lots
from service.app.receipts import points_changed
from service.app.unit_of_work import UnitOfWork
from service.engine.model import Channel, Member
from service.engine.points_balance import Lifetime, Movement, PointsHolding, PointsPosition, replay
from service.engine.points_balance import points_position as replay_position
from service.store.loader import load_member
from service.store.member_repo import save_member
from service.store.models import PointsLedgerRow, ReceiptRow, RefundRow
from service.store.points_repo import (
    members_with_lots_expiring,
    points_holdings,
    points_position,
    queue_receipt_points,
    reverse,
    write_reversal,
)

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
LIFETIMES = (
    Lifetime(),
    Lifetime(activation=DAY),
    Lifetime(expiry=2 * DAY),
    Lifetime(activation=DAY, expiry=3 * DAY),
)
OFFERS = ("B1", "B2")


@dataclass
class Sold:
    """A receipt in the script: what it earned per offer and spent, less what refunds took."""

    receipt_id: str
    earned: dict[str, int]
    spent: int
    taken: dict[str, int] = field(default_factory=dict)
    returned: int = 0


@dataclass
class Script:
    sessions: sessionmaker[Session]
    member_id: str
    now: datetime = START
    written: datetime = START  # the last write of the member's points
    sold: list[Sold] = field(default_factory=list)

    def unit(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, now=self.now)

    def confirm(self, earned: dict[str, int], spend_wish: int, lifetime: Lifetime) -> None:
        """A confirm's points, as the confirm moves them (queue_receipt_points): the
        spending, as much of the wish as is available in the store, then the accruals."""
        receipt_id = f"R-{uuid.uuid4().hex[:12]}"
        with self.unit() as uow:
            uow.lock_members([self.member_id])
            uow.session.add(_receipt(receipt_id, self.member_id, self.now))
            uow.session.flush()
            available = max(points_position(uow.session, self.member_id, self.now).available, 0)
            spent = min(spend_wish, available)
            moved = queue_receipt_points(
                uow.batch, self.member_id, receipt_id, spent, earned, self.now, lifetime
            ).value()
            assert not spent or moved.available_before >= spent  # the confirm's own check
            points_changed(uow, self.member_id, moved.after)
            uow.commit()
        self.written = self.now
        self.sold.append(Sold(receipt_id, earned, spent))

    def refund(self, sold: Sold, share: float, lifetime: Lifetime) -> None:
        taken = {
            offer: int((points - sold.taken.get(offer, 0)) * share)
            for offer, points in sold.earned.items()
        }
        returned = int((sold.spent - sold.returned) * share)
        refund_id = f"F-{uuid.uuid4().hex[:12]}"
        with self.unit() as uow:
            uow.lock_members([self.member_id])
            uow.session.add(_refund(refund_id, sold.receipt_id, self.now))
            uow.session.flush()
            reversal = reverse(
                uow.batch, self.member_id, sold.receipt_id, refund_id, taken, returned,
                self.now, lifetime,
            ).value()  # fmt: skip
            write_reversal(uow.batch, reversal)
            points_changed(uow, self.member_id, reversal.after)
            uow.commit()
        self.written = self.now
        for offer, points in taken.items():
            sold.taken[offer] = sold.taken.get(offer, 0) + points
        sold.returned += returned

    def expire(self) -> None:
        with self.sessions() as session:  # the job writes the points of members it closes
            closing = self.member_id in members_with_lots_expiring(session, None, self.now)
        close_expired_lots(self.unit, self.now)
        if closing:
            self.written = self.now

    def check(self, later: timedelta, soon: timedelta) -> None:
        at = self.now + later
        with self.sessions() as session:
            member = load_member(session, self.member_id)
            assert member is not None
            assert member.points == points_holdings(session, [self.member_id]).get(
                self.member_id, member.points
            ), "the document holds the store's open lots"
            cached = member.points.position(at, soon)
            stored = points_position(session, self.member_id, at, soon)
            ledger = _ledger(session, self.member_id)
            replayed = replay_position(ledger, at, soon)
        assert _figures(cached) == _figures(stored) == _figures(replayed)
        assert stored.expiry_to_record == replayed.expiry_to_record
        assert _kept(member.points, at) == _kept(replay(ledger)[0], at)
        spendable = [
            (lot.kind, lot.expires_at) for lot in member.points.lots if lot.spendable(self.written)
        ]
        assert len(spendable) == len(set(spendable)), "folded at the last write"


def _kept(holding: PointsHolding, at: datetime) -> tuple[int, dict[tuple[Any, Any], int]]:
    """The debt and the points held at `at` by activation (None: spendable) and expiry."""
    kept: dict[tuple[Any, Any], int] = {}
    for lot in holding.lots:
        if not lot.expired(at):
            key = (None if lot.spendable(at) else lot.available_at, lot.expires_at)
            kept[key] = kept.get(key, 0) + lot.left
    return holding.debt, kept


def _figures(position: PointsPosition) -> tuple[int, int, int, int]:
    return position.available, position.pending, position.expiring_soon, position.balance


def _ledger(session: Session, member_id: str) -> list[Movement]:
    ledger = PointsLedgerRow.__table__
    rows = session.execute(
        select(
            ledger.c.kind,
            ledger.c.points,
            ledger.c.created_at,
            ledger.c.available_at,
            ledger.c.expires_at,
            ledger.c.receipt_id,
        )
        .where(ledger.c.member_id == member_id)
        .order_by(ledger.c.id)
    )
    return [Movement(*row) for row in rows]


def _refund(refund_id: str, receipt_id: str, at: datetime) -> RefundRow:
    return RefundRow(
        refund_id=refund_id, receipt_id=receipt_id, fingerprint="f", response=b"", created_at=at
    )


def _receipt(receipt_id: str, member_id: str, at: datetime) -> ReceiptRow:
    return ReceiptRow(
        receipt_id=receipt_id, store_id="S1", channel=Channel.POS, member_id=member_id,
        sale_time=at, fingerprint="f", response=b"", total_amount=0, total_discount=0,
        total_paid=0, total_points=0, confirmed_at=at,
    )  # fmt: skip


earnings = st.fixed_dictionaries({offer: st.integers(0, 300) for offer in OFFERS})
lifetimes = st.sampled_from(LIFETIMES)
hours = st.integers(0, 96).map(lambda h: timedelta(hours=h))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_the_cached_points_are_the_stores_and_the_ledgers(
    shared_db: sessionmaker[Session], data: st.DataObject
) -> None:
    script = Script(shared_db, f"M-{uuid.uuid4().hex[:12]}")
    with shared_db() as session:
        save_member(session, Member(script.member_id), now=START)
        session.commit()
    lifetime = data.draw(lifetimes, label="lifetime")  # a deployment's, for all its points
    changing = data.draw(st.booleans(), label="lifetime changes between receipts")
    steps: dict[str, Callable[[], None]] = {
        "confirm": lambda: script.confirm(
            data.draw(earnings),
            data.draw(st.integers(0, 400)),
            data.draw(lifetimes) if changing else lifetime,
        ),
        "refund": lambda: script.refund(
            data.draw(st.sampled_from(script.sold)),
            data.draw(st.sampled_from([0.5, 1.0])),
            lifetime,
        ),  # fmt: skip
        "later": lambda: setattr(script, "now", script.now + data.draw(hours)),
        "expire": script.expire,
    }
    for _step in range(data.draw(st.integers(1, 12), label="steps")):
        name = data.draw(st.sampled_from(sorted(steps)))
        if name == "refund" and not script.sold:
            name = "confirm"
        steps[name]()
        script.check(data.draw(hours), data.draw(st.sampled_from([timedelta(0), DAY])))
