"""The receipt lifecycle's values and rules, pure: what a confirm commits, what a refund asks
and gives back (docs/receipts.md). No SQL, no protobuf: service.app.receipts runs the
transactions, service.store.receipt_* persists these values, service.api.convert translates.

A refund gives back every value of a line (amount, discount, each offer's points, the chips
granted and spent on it, each offer's usage in units) in proportion to the quantity refunded,
on the cumulative quantity: after a refund the line has given back
round_half_up(value x refunded so far / quantity).
One refund's share is the difference between that after and before it. So the shares of all
partial refunds of a line add up exactly to the line's value once the whole quantity is
refunded, whatever the steps, and no step is ever negative.

Points spent on a line (spec §21) come back the same way, so all the refunds of a line give
back exactly what was spent on it, never more.

A usage limit counted in RECEIPTS is given back when every line the offer applied to is
refunded in full; one counted in UNITS is spread over those lines as the engine covered them
(in line_id order, each line up to its quantity) and given back in proportion, like money.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from service.engine.model import PIECE_QUANTITY, AppliedBenefit, Channel, LimitUnit
from service.engine.money import allocate, round_half_up
from service.errors import FailedPrecondition, InvalidArgument
from service.limits import quote

NOTHING_LEFT_TO_REFUND = "NOTHING_LEFT_TO_REFUND"
REFUND_EXCEEDS_PURCHASE = "REFUND_EXCEEDS_PURCHASE"

IsPiece = Callable[[str], bool]  # sku -> sold by the piece (refunded in whole pieces)
Bought = dict[tuple[str, str], tuple[int, int]]  # (sku, month) -> (quantity, amount paid)


def purchase_month(sale_time: datetime, time_zone: ZoneInfo) -> str:
    """The month of a sale in the program's time zone, as the purchase history keys it."""
    return sale_time.astimezone(time_zone).strftime("%Y-%m")


# --- a confirm --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SoldLine:
    """A line of a receipt to confirm: quantity and price as sent, the rest as shown."""

    line_id: str
    sku: str
    quantity: int
    price: int
    amount: int
    discount: int
    paid: int
    points: int
    benefits: tuple[AppliedBenefit, ...]
    chips: int = 0  # granted on the line
    chips_spent: int = 0  # spent on its reward
    points_spent: int = 0  # bonus points spent on the line (spec §21)


@dataclass(frozen=True, slots=True)
class ConfirmedReceipt:
    """A receipt to commit: store and channel as sent, the result the customer was shown (the
    token's: lines in its order, totals, the sale time it was evaluated at) for the member it
    was calculated for ("" for an anonymous buyer)."""

    receipt_id: str
    store_id: str
    channel: Channel
    member_id: str
    sale_time: datetime  # aware, UTC
    lines: tuple[SoldLine, ...]
    total_amount: int
    total_discount: int
    total_paid: int
    total_points: int

    @property
    def total_points_spent(self) -> int:
        return sum(line.points_spent for line in self.lines)

    def points_by_offer(self) -> dict[str, int]:
        """The points each offer gave on the receipt, by offer id (one ledger row each)."""
        by_offer: dict[str, int] = {}
        for line in self.lines:
            for benefit in line.benefits:
                if benefit.points:
                    by_offer[benefit.offer_id] = by_offer.get(benefit.offer_id, 0) + benefit.points
        return dict(sorted(by_offer.items()))

    @property
    def chips_granted(self) -> int:
        return sum(line.chips for line in self.lines)

    @property
    def chips_spent(self) -> int:
        return sum(line.chips_spent for line in self.lines)

    def bought(self, time_zone: ZoneInfo) -> Bought:
        """What the purchase history of the sale's month gains."""
        month = purchase_month(self.sale_time, time_zone)
        bought: Bought = {}
        for line in self.lines:
            quantity, paid = bought.get((line.sku, month), (0, 0))
            bought[(line.sku, month)] = (quantity + line.quantity, paid + line.paid)
        return bought


@dataclass(frozen=True, slots=True)
class UsageClaim:
    """What a confirm uses up of a member's limit on an offer in one period. `limit` and
    `unit` are the offer's current limit; `name` is what the register may show."""

    offer_id: str
    period_key: str
    used: int
    limit: int
    unit: LimitUnit
    name: str = ""


@dataclass(frozen=True, slots=True)
class CountedUsage:
    """Usage of a limited offer a confirm counted (kept with the receipt for refunds)."""

    offer_id: str
    period_key: str
    used: int
    unit: LimitUnit


# --- a refund ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefundLine:
    line_id: str
    quantity: int  # thousandths of a unit


@dataclass(frozen=True, slots=True)
class RefundRequest:
    """A refund as asked: `full`, or these lines (in request order). `fingerprint` identifies
    the request but its refund id (a repeat has the same one)."""

    refund_id: str
    receipt_id: str
    full: bool
    lines: tuple[RefundLine, ...]
    fingerprint: str


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
    chips: int = 0  # granted on the line
    chips_spent: int = 0  # spent on its reward
    points_spent: int = 0  # bonus points the confirm spent on the line

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
    chips: int = 0  # granted chips taken back
    chips_spent: int = 0  # spent chips given back
    points_returned: int = 0  # of the points spent on the line, what this refund gives back

    @property
    def paid(self) -> int:
        return self.amount - self.discount

    @property
    def points(self) -> int:
        return sum(points for _, points in self.points_by_offer)


@dataclass(frozen=True, slots=True)
class Refund:
    """What one refund gave back, line by line, and the member's balance after it."""

    refund_id: str
    receipt_id: str
    lines: tuple[LineRefund, ...]
    points_balance: int
    chips_balance: int = 0

    @property
    def total_paid(self) -> int:
        return sum(line.paid for line in self.lines)

    @property
    def total_chips(self) -> int:
        return sum(line.chips for line in self.lines)

    @property
    def total_chips_spent(self) -> int:
        return sum(line.chips_spent for line in self.lines)

    @property
    def total_points(self) -> int:
        return sum(line.points for line in self.lines)

    @property
    def total_points_returned(self) -> int:
        return sum(line.points_returned for line in self.lines)


def lines_to_refund(
    request: RefundRequest, lines: Sequence[ConfirmedLine], is_piece: IsPiece
) -> list[tuple[ConfirmedLine, int]]:
    """Which lines, and how much of each, the request refunds; refused if it asks for a line
    the receipt does not have, part of a piece, or more than is left."""
    if request.full:
        wanted = [(line, line.left) for line in lines if line.left > 0]
        if not wanted:
            raise FailedPrecondition(
                f"receipt {quote(request.receipt_id)} is already refunded in full",
                reason=NOTHING_LEFT_TO_REFUND,
            )
        return wanted
    by_id = {line.line_id: line for line in lines}
    wanted = []
    for index, asked in enumerate(request.lines):
        line = by_id.get(asked.line_id)
        if line is None:
            raise InvalidArgument(
                f"lines[{index}].line_id",
                f"receipt {quote(request.receipt_id)} has no line {quote(asked.line_id)}",
            )
        quantity = asked.quantity
        if quantity > line.left:
            raise FailedPrecondition(
                f"line {quote(line.line_id)}: {_units(line.left)} left to refund, "
                f"{_units(quantity)} asked",
                reason=REFUND_EXCEEDS_PURCHASE,
            )
        if quantity % PIECE_QUANTITY and quantity != line.left and is_piece(line.sku):
            raise InvalidArgument(
                f"lines[{index}].quantity",
                "a product sold by the piece is refunded in whole pieces (x1000)",
            )
        wanted.append((line, quantity))
    return wanted


def _units(quantity: int) -> str:
    return f"{quantity // PIECE_QUANTITY}.{quantity % PIECE_QUANTITY:03d}"


def returned_goods(refunds: Sequence[LineRefund], month: str) -> Bought:
    """What the purchase history of the month of the sale loses (negative quantities)."""
    returned: Bought = {}
    for r in refunds:
        quantity, paid = returned.get((r.sku, month), (0, 0))
        returned[(r.sku, month)] = (quantity - r.quantity, paid - r.paid)
    return returned


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
        chips=step_share(line.chips, before, after, whole),
        chips_spent=step_share(line.chips_spent, before, after, whole),
        points_returned=step_share(line.points_spent, before, after, whole),
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
