"""A member's points at an instant, from their ledger (spec §21, docs/points.md). Pure.

Every positive movement (an accrual, spent points given back) is a lot: spendable from its
`available_at` (None: at once) until its `expires_at` (None: never). Negative movements take
from the lots, replayed in the ledger's order:

- a spending takes from the lots spendable at its time, those expiring first first (lots that
  never expire last), so points about to lapse are used before others;
- a reversal (a refund taking back what a receipt earned) takes from that receipt's own
  accrual first, then like a spending; what no lot covers (the earned points were spent
  already) is a debt the next lots pay first.

A lot's remainder at its expiry is gone: not available, not in the balance. The ledger records
it with an expiry row (jobs.record_points_expiry) which the replay skips, since the replay
expires lots by their time alone; so the balance is right before the row is written too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ACCRUAL = "accrual"
REVERSAL = "reversal"
SPEND = "spend"
RETURN = "return"
EXPIRY = "expiry"


@dataclass(frozen=True, slots=True)
class Lifetime:
    """When new points may be spent (after `activation`) and for how long (None: forever)."""

    activation: timedelta = timedelta(0)
    expiry: timedelta | None = None

    def available_at(self, at: datetime) -> datetime | None:
        return at + self.activation if self.activation else None

    def expires_at(self, at: datetime) -> datetime | None:
        return None if self.expiry is None else at + self.activation + self.expiry

    def given_back_expires_at(self, at: datetime) -> datetime | None:
        """Spent points a refund gives back are spendable at once, valid as long as new."""
        return None if self.expiry is None else at + self.expiry


FOREVER = Lifetime()


@dataclass(frozen=True, slots=True)
class Movement:
    """One ledger row as the replay needs it."""

    kind: str
    points: int
    at: datetime
    available_at: datetime | None = None
    expires_at: datetime | None = None
    receipt_id: str | None = None


@dataclass(frozen=True, slots=True)
class PointsPosition:
    """A member's points at an instant. balance = available + pending."""

    available: int  # may be spent now
    pending: int  # waiting for their activation
    expiring_soon: int = 0  # of the available, those that expire within the window asked
    expired: int = 0  # gone by now, whether or not the ledger recorded it yet
    recorded_expiry: int = 0  # what the ledger's expiry rows recorded

    @property
    def balance(self) -> int:
        return self.available + self.pending

    @property
    def expiry_to_record(self) -> int:
        return self.expired - self.recorded_expiry


@dataclass(slots=True)
class _Lot:
    left: int
    kind: str
    available_at: datetime | None
    expires_at: datetime | None
    receipt_id: str | None

    def spendable(self, at: datetime) -> bool:
        return (self.available_at is None or self.available_at <= at) and not self.expired(at)

    def expired(self, at: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= at


def points_position(
    movements: Iterable[Movement], at: datetime, soon: timedelta = timedelta(0)
) -> PointsPosition:
    """The position at `at` of the ledger's movements (in the ledger's order); the points
    expiring within `soon` of `at` are counted as expiring soon."""
    lots: list[_Lot] = []
    debt = recorded = 0
    for m in movements:
        if m.kind == EXPIRY:
            recorded -= m.points
        elif m.points > 0:
            paid = min(debt, m.points)
            debt -= paid
            lots.append(_Lot(m.points - paid, m.kind, m.available_at, m.expires_at, m.receipt_id))
        elif m.points < 0:
            debt += _take(lots, -m.points, m)
    available = pending = expiring = expired = 0
    horizon = soon_until(at, soon)
    for lot in lots:
        if lot.expired(at):
            expired += lot.left
        elif lot.spendable(at):
            available += lot.left
            if lot.expires_at is not None and lot.expires_at <= horizon:
                expiring += lot.left
        else:
            pending += lot.left
    return PointsPosition(available - debt, pending, expiring, expired, recorded)


def soon_until(at: datetime, soon: timedelta) -> datetime:
    """The end of the "expiring soon" window from `at`; the last datetime near year 9999."""
    try:
        return at + soon
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def _take(lots: list[_Lot], points: int, movement: Movement) -> int:
    """Take `points` from the lots for the movement; what no lot covered."""
    usable = [lot for lot in lots if lot.left and lot.spendable(movement.at)]
    if movement.kind == REVERSAL:
        own = [
            lot
            for lot in lots
            if lot.left
            and lot.kind == ACCRUAL
            and lot.receipt_id == movement.receipt_id
            and not lot.expired(movement.at)
        ]
        usable = own + [lot for lot in usable if lot not in own]
    else:
        usable.sort(key=lambda lot: (lot.expires_at is None, lot.expires_at or movement.at))
    for lot in usable:
        taken = min(lot.left, points)
        lot.left -= taken
        points -= taken
        if not points:
            break
    return points
