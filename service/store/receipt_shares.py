"""How much of a confirmed line a refund gives back: pure arithmetic, no SQL.

Every value of a line (amount, discount, each offer's points, each offer's usage in units) is
given back in proportion to the quantity refunded, on the cumulative quantity: after a
refund the line has given back round_half_up(value x refunded so far / quantity). One refund's
share is the difference between that after and before it. So the shares of all partial
refunds of a line add up exactly to the line's value once the whole quantity is refunded,
whatever the steps, and no step is ever negative.

A usage limit counted in RECEIPTS is given back when every line the offer applied to is
refunded in full; one counted in UNITS is spread over those lines as the engine covered them
(in line_id order, each line up to its quantity) and given back in proportion, like money.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from service.engine.model import LimitUnit
from service.engine.money import allocate, round_half_up


@dataclass(frozen=True, slots=True)
class ConfirmedLine:
    """A line of a confirmed receipt, with what earlier refunds already took back."""

    line_no: int
    line_id: str
    sku: str
    quantity: int
    amount: int
    discount: int
    points_by_offer: tuple[tuple[str, int], ...]  # (offer id, points), by offer id
    offer_ids: frozenset[str]  # every offer with a benefit on the line
    refunded: int = 0  # quantity given back by earlier refunds

    @property
    def left(self) -> int:
        return self.quantity - self.refunded


@dataclass(frozen=True, slots=True)
class LineRefund:
    """What one refund gives back of one line. paid = amount - discount."""

    line_no: int
    line_id: str
    sku: str
    quantity: int
    amount: int
    discount: int
    points_by_offer: tuple[tuple[str, int], ...]

    @property
    def paid(self) -> int:
        return self.amount - self.discount

    @property
    def points(self) -> int:
        return sum(points for _, points in self.points_by_offer)


@dataclass(frozen=True, slots=True)
class CountedUsage:
    """Usage of a limited offer a confirm counted."""

    offer_id: str
    period_key: str
    used: int
    unit: LimitUnit


def share(value: int, refunded: int, quantity: int) -> int:
    """The part of `value` that belongs to `refunded` of `quantity`, rounded half up."""
    return round_half_up(value * refunded, quantity)


def step_share(value: int, before: int, after: int, quantity: int) -> int:
    """What going from `before` to `after` refunded (of `quantity`) gives back of `value`."""
    return share(value, after, quantity) - share(value, before, quantity)


def refund_line(line: ConfirmedLine, quantity: int) -> LineRefund:
    """The share of `line` that refunding `quantity` more of it gives back."""
    if not 0 < quantity <= line.left:
        raise ValueError(f"cannot refund {quantity} of line {line.line_id}: {line.left} left")
    before, after, whole = line.refunded, line.refunded + quantity, line.quantity
    return LineRefund(
        line_no=line.line_no,
        line_id=line.line_id,
        sku=line.sku,
        quantity=quantity,
        amount=step_share(line.amount, before, after, whole),
        discount=step_share(line.discount, before, after, whole),
        points_by_offer=tuple(
            (offer_id, step_share(points, before, after, whole))
            for offer_id, points in line.points_by_offer
        ),
    )


def points_by_offer(refunds: Sequence[LineRefund]) -> dict[str, int]:
    """Points a refund takes back per offer (offers with nothing to take back left out)."""
    totals: dict[str, int] = {}
    for refund in refunds:
        for offer_id, points in refund.points_by_offer:
            if points:
                totals[offer_id] = totals.get(offer_id, 0) + points
    return dict(sorted(totals.items()))


def usage_given_back(
    usage: CountedUsage, lines: Sequence[ConfirmedLine], refunded_now: Mapping[int, int]
) -> int:
    """How much of a counted usage a refund gives back; `refunded_now` maps line_no to the
    quantity this refund takes back of it."""
    carriers = [line for line in lines if usage.offer_id in line.offer_ids] or list(lines)
    if usage.unit is LimitUnit.RECEIPTS:
        was_whole = all(line.left == 0 for line in carriers)
        now_whole = all(line.left - refunded_now.get(line.line_no, 0) == 0 for line in carriers)
        return usage.used if now_whole and not was_whole else 0
    covered = units_per_line(usage.used, carriers)
    return sum(
        step_share(covered[line.line_no], line.refunded, line.refunded + quantity, line.quantity)
        for line in carriers
        if (quantity := refunded_now.get(line.line_no, 0))
    )


def units_per_line(used: int, lines: Sequence[ConfirmedLine]) -> dict[int, int]:
    """Spread `used` units over the lines as the engine covered them: in line_id order, each
    line up to its quantity. Anything beyond the lines' quantities (a limit counted on more
    than the lines hold, which the engine never does) is spread by quantity."""
    covered: dict[int, int] = {}
    left = used
    for line in sorted(lines, key=lambda line: line.line_id):
        part = min(left, line.quantity)
        covered[line.line_no] = part
        left -= part
    if left > 0 and lines:
        extra = allocate(left, [line.quantity for line in lines])
        for line, part in zip(lines, extra, strict=True):
            covered[line.line_no] += part
    return covered
