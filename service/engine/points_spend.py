"""Spending bonus points on a calculated receipt (spec §21, docs/points.md). Pure.

Runs after the lines are settled (discounts, min price, bonuses: spec §6), and only when the
request asks to spend points, so a receipt without points costs nothing more:

1. each line's room: what is left to pay after discounts, less its floor (min price x
   quantity, and the minor units a line keeps paid in money if configured), in whole points;
   an excluded product has none;
2. the receipt's cap: a share of what is left to pay after discounts (floored);
3. spent = min(asked, the member's available points, the sum of rooms, the cap);
4. spent is spread over the lines with room, in proportion to what is left to pay, by
   largest remainder (money.allocate); a line whose share passes its room keeps its room and
   the rest is spread again over the others, so the parts always add up exactly;
5. accrual on money only (configurable): each bonus on a line keeps the share of its points
   that the money part is of what is left to pay, rounded half up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from service.engine.model import AppliedBenefit, LineResult, PointsSpend, Product, ReceiptResult
from service.engine.money import allocate, round_half_up
from service.engine.records import new_applied_benefit, new_line_result
from service.engine.valuation import min_price_floor


@dataclass(frozen=True, slots=True)
class PointsPolicy:
    """The deployment's rules for spending points (service.config, "points spending")."""

    point_value: int = 1  # minor units one point pays
    max_share_bp: int = 5000  # of what is left to pay after discounts, in basis points
    min_money_per_line: int = 0  # minor units each line keeps paid in money
    accrue_on_money_only: bool = True


@dataclass(frozen=True, slots=True)
class PointsRequest:
    """What the member wants to spend (None: as many as allowed) and has available."""

    wanted: int | None
    available: int
    policy: PointsPolicy


def spend_points(
    products: Sequence[Product | None],
    quantities: Sequence[int],
    result: ReceiptResult,
    request: PointsRequest,
) -> ReceiptResult:
    """The result with the points spent on it (`spend`) and the accruals on money only.

    `products` (None: unknown SKU) and `quantities` (for the min price) are the lines', in
    the result's order."""
    policy = request.policy
    rooms = [
        _room(line, product, quantity, policy)
        for line, product, quantity in zip(result.lines, products, quantities, strict=True)
    ]
    cap = result.total_paid * policy.max_share_bp // 10000 // policy.point_value
    allowed = min(sum(rooms), cap)
    requested = allowed if request.wanted is None else request.wanted
    spent = max(0, min(requested, request.available, allowed))
    per_line = spread(spent, [line.paid for line in result.lines], rooms)
    spend = PointsSpend(requested, request.available, allowed, policy.point_value, tuple(per_line))
    if not spent:
        return replace(result, spend=spend)
    lines = result.lines
    if policy.accrue_on_money_only:
        lines = tuple(
            _accrue_on_money(line, points * policy.point_value) if points else line
            for line, points in zip(result.lines, per_line, strict=True)
        )
    return replace(
        result, lines=lines, total_points=sum(line.points for line in lines), spend=spend
    )


def _room(line: LineResult, product: Product | None, quantity: int, policy: PointsPolicy) -> int:
    """Whole points the line may take: what is left to pay above its floor."""
    if product is not None and product.excluded:
        return 0
    floor = max(min_price_floor(product, quantity), policy.min_money_per_line)
    return max(0, line.paid - floor) // policy.point_value


def spread(total: int, weights: Sequence[int], rooms: Sequence[int]) -> list[int]:
    """`total` over the lines in proportion to `weights` by largest remainder, no line above
    its room; `total` must not exceed the sum of rooms. Lines without room get nothing."""
    parts = [0] * len(weights)
    open_lines = [i for i, room in enumerate(rooms) if room > 0]
    left = total
    while left > 0:
        shares = allocate(left, [weights[i] for i in open_lines])
        full = [i for i, part in zip(open_lines, shares, strict=True) if part >= rooms[i]]
        if not full:
            for i, part in zip(open_lines, shares, strict=True):
                parts[i] = part
            break
        for i in full:  # these take their room; the rest is spread again over the others
            parts[i] = rooms[i]
            left -= rooms[i]
        open_lines = [i for i in open_lines if i not in full]
    return parts


def _accrue_on_money(line: LineResult, value: int) -> LineResult:
    """The line with each bonus scaled to the part of `paid` settled in money, rounded half
    up; the line itself when no bonus changes (a few points spent on a big line round back
    to the same bonus). Built with the hot path's constructors (engine.records), and only
    where a bonus changes: this runs for every line that takes points."""
    money, paid = line.paid - value, line.paid
    benefits = line.benefits
    scaled: list[AppliedBenefit] | None = None
    for index, b in enumerate(benefits):
        if not b.points:
            continue
        points = round_half_up(b.points * money, paid)
        if points != b.points:
            if scaled is None:
                scaled = list(benefits)
            scaled[index] = new_applied_benefit(
                b.offer_id, b.mechanic, b.kind, b.discount, points, b.text
            )
    if scaled is None:
        return line
    return new_line_result(
        line.line_id, line.sku, line.amount, line.discount, line.paid,
        sum(b.points for b in scaled), tuple(scaled), line.known_sku, line.rejected,
    )  # fmt: skip
