"""A member's points at an instant (spec §21, docs/points.md). Pure.

Every positive movement (an accrual, spent points given back) is a lot: spendable from its
`available_at` (None: at once) until its `expires_at` (None: never). Negative movements take
from the lots, in the ledger's order:

- a spending takes from the lots spendable at its time, those expiring first first (lots that
  never expire last), so points about to lapse are used before others;
- a reversal (a refund taking back what a receipt earned) takes from that receipt's own
  accrual first, then from the spendable lots expiring when that accrual does (where a folded
  accrual is), then from the other spendable lots in ledger order; what no lot covers (the
  earned points were spent already) is a debt the next lots pay first.

Lots that no rule can tell apart any more are folded into one at each write (`folded`): the
spendable lots of one kind and one expiry, and the pending lots of one receipt and lifetime.
A spendable lot's activation is past and its receipt only decides which lot of its expiry a
reversal takes first; pending lots keep their receipt (a pending accrual and its reversal net
out) and so stay apart from other receipts'. A member who earns and never spends thus holds
one lot per expiry (and one per receipt still pending), not one per receipt.

A PointsHolding is what the movements leave: the lots with points left and the debt. The store
keeps it current with each movement (so a confirm reads the open lots, not the ledger) and so
does the member's document (so a calculation reads it from memory); `replay` rebuilds it from
the ledger, which stays the audit trail.

A lot's remainder at its expiry is gone: not available, not in the balance, by its time alone,
so the figures are right before the expiry job closes the lot and records it (an expiry row,
which the replay skips)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
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
    expires_at: datetime | None = None  # of a reversal: when its receipt's accrual expires
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


@dataclass(frozen=True, slots=True)
class Lot:
    """The points of one positive movement that are left: spendable from `available_at`
    (None: at once) until `expires_at` (None: never). `key` is the store's id of its row (None
    in a member document and until stored); the engine carries it along."""

    left: int
    kind: str = ACCRUAL  # ACCRUAL or RETURN
    available_at: datetime | None = None
    expires_at: datetime | None = None
    receipt_id: str | None = None  # of an accrual: a reversal of its receipt takes it first
    key: int | None = None

    def spendable(self, at: datetime) -> bool:
        return (self.available_at is None or self.available_at <= at) and not self.expired(at)

    def expired(self, at: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= at


@dataclass(frozen=True, slots=True)
class PointsHolding:
    """What a member holds: the lots with points left, in ledger order, and the debt (points
    taken back after they were spent) that the next points pay first. The store keeps it
    (points_lots) and so does the member's document, so a calculation reads it from memory."""

    lots: tuple[Lot, ...] = ()
    debt: int = 0

    def position(self, at: datetime, soon: timedelta = timedelta(0)) -> PointsPosition:
        """The points at `at`; those available expiring within `soon` count as expiring."""
        available = pending = expiring = expired = 0
        horizon = soon_until(at, soon) if soon else at
        for lot in self.lots:
            if lot.expired(at):
                expired += lot.left
            elif lot.available_at is None or lot.available_at <= at:
                available += lot.left
                if lot.expires_at is not None and lot.expires_at <= horizon:
                    expiring += lot.left
            else:
                pending += lot.left
        return PointsPosition(available - self.debt, pending, expiring, expired)

    def after(self, movement: Movement) -> PointsHolding:
        """The holding once `movement` (not an expiry record) is made; emptied lots drop out."""
        if movement.points > 0:
            paid = min(self.debt, movement.points)
            lot = Lot(
                movement.points - paid,
                movement.kind,
                movement.available_at,
                movement.expires_at,
                movement.receipt_id if movement.kind == ACCRUAL else None,
            )
            return PointsHolding(self.lots + ((lot,) if lot.left else ()), self.debt - paid)
        if movement.points < 0:
            lots, uncovered = _take(self.lots, -movement.points, movement)
            return PointsHolding(lots, self.debt + uncovered)
        return self

    def folded(self, at: datetime) -> PointsHolding:
        """The same points with the lots no rule tells apart at `at` folded: the spendable
        ones into one per kind and expiry (no receipt, no activation: it is spendable), the
        pending ones of one receipt and lifetime into one. A folded lot sits where the first
        of its lots did and keeps its store key."""
        groups: dict[tuple[object, ...], list[int]] = {}
        for i, lot in enumerate(self.lots):
            if lot.spendable(at):
                groups.setdefault((lot.kind, lot.expires_at), []).append(i)
            elif not lot.expired(at):
                key = (lot.kind, lot.expires_at, lot.available_at, lot.receipt_id)
                groups.setdefault(key, []).append(i)
        folds = [group for group in groups.values() if len(group) > 1]
        if not folds:
            return self
        lots: list[Lot | None] = list(self.lots)
        for first, *others in folds:
            lot = self.lots[first]
            left = sum(self.lots[i].left for i in (first, *others))
            if lot.spendable(at):
                lots[first] = replace(lot, left=left, available_at=None, receipt_id=None)
            else:
                lots[first] = replace(lot, left=left)
            for i in others:
                lots[i] = None
        return PointsHolding(tuple(lot for lot in lots if lot is not None), self.debt)

    def without_expired(self, at: datetime) -> PointsHolding:
        """The same points at `at` and after, without the lots that are gone by then."""
        if not any(lot.expired(at) for lot in self.lots):
            return self
        return PointsHolding(tuple(lot for lot in self.lots if not lot.expired(at)), self.debt)


NO_POINTS = PointsHolding()


def points_position(
    movements: Iterable[Movement], at: datetime, soon: timedelta = timedelta(0)
) -> PointsPosition:
    """The position at `at` of the ledger's movements (in the ledger's order); the points
    expiring within `soon` of `at` are counted as expiring soon."""
    holding, recorded = replay(movements)
    return replace(holding.position(at, soon), recorded_expiry=recorded)


def replay(movements: Iterable[Movement]) -> tuple[PointsHolding, int]:
    """The holding the ledger's movements leave, folded at each movement as the store folds at
    each write, and the points its expiry rows recorded. A reversal's row does not say when
    its accrual expires; the accrual's row before it does."""
    holding, recorded = NO_POINTS, 0
    accrual_expiry: dict[str | None, datetime | None] = {}
    for m in movements:
        if m.kind == EXPIRY:
            recorded -= m.points
            continue
        if m.kind == ACCRUAL:
            accrual_expiry.setdefault(m.receipt_id, m.expires_at)
        elif m.kind == REVERSAL:
            m = replace(m, expires_at=accrual_expiry.get(m.receipt_id))
        holding = holding.after(m).folded(m.at)
    return holding, recorded


def soon_until(at: datetime, soon: timedelta) -> datetime:
    """The end of the "expiring soon" window from `at`; the last datetime near year 9999."""
    try:
        return at + soon
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)


def _take(lots: tuple[Lot, ...], points: int, movement: Movement) -> tuple[tuple[Lot, ...], int]:
    """The lots once `points` are taken from them for the movement, and what none covered."""
    at = movement.at
    order = [i for i, lot in enumerate(lots) if lot.spendable(at)]
    if movement.kind == REVERSAL:
        own = [
            i
            for i, lot in enumerate(lots)
            if lot.kind == ACCRUAL and lot.receipt_id == movement.receipt_id and not lot.expired(at)
        ]
        same_expiry = [
            i for i in order if i not in own and lots[i].expires_at == movement.expires_at
        ]
        first = own + same_expiry
        order = first + [i for i in order if i not in first]
    else:
        order.sort(key=lambda i: (lots[i].expires_at is None, lots[i].expires_at or at))
    left = [lot.left for lot in lots]
    for i in order:
        taken = min(left[i], points)
        left[i] -= taken
        points -= taken
        if not points:
            break
    kept = tuple(
        lot if lot.left == now else replace(lot, left=now)
        for lot, now in zip(lots, left, strict=True)
        if now
    )
    return kept, points
