"""Calculating a receipt (spec §4-7): which benefits apply to each line, and how much.

For each line, independently of the others:
1. its candidates are the "all products" offers (checked against the receipt's filters and
   split by role once per receipt) and the line's own: offers scoped to its groups (one
   lookup in the snapshot) merged with the member's individual rules for its SKU; each
   rule is checked against the receipt's filters at most once per receipt;
2. option A is the best EXCLUSIVE discount alone (largest; ties: higher priority, then
   smaller offer id), option B every COMBINABLE discount in priority order, each on what
   is left to pay; B wins only if it gives more (a tie goes to A);
3. the line is never paid below min price x quantity, nor below zero: the last applied
   discount is cut first (reduced, dropped when it reaches zero), then the one before;
4. every bonus candidate is added, each on the final paid amount;
5. an excluded product gets nothing; an unknown SKU gets only "all products" offers.

The one thing shared between lines is a usage limit in UNITS: its remaining quantity is
spread over the lines it matches (eligible, and giving something on the full line amount)
in line_id order, whether or not it then wins on the line, so that a line's result never
depends on the request order or on the other offers of other lines. Lines with such a
candidate are evaluated after the others, once the spread is known.
"""

from __future__ import annotations

from service.engine.chips import apply_chips
from service.engine.eligibility import ReceiptContext
from service.engine.individual import individual_rules_for
from service.engine.model import (
    AppliedBenefit,
    LimitUnit,
    Line,
    LineResult,
    Product,
    Receipt,
    ReceiptResult,
    RejectedCandidate,
    UsageCharge,
)
from service.engine.plans import LinePlan
from service.engine.points_spend import PointsRequest, spend_points
from service.engine.records import new_applied_benefit, new_line_result
from service.engine.rules import INELIGIBLE, UNITS_LIMITED, Rule
from service.engine.snapshot import Snapshot
from service.engine.valuation import covered_share, discount_on, min_price_floor, points_on

# explain-mode reasons decided on the line (filters' reasons live in engine.eligibility)
PRODUCT_EXCLUDED = "product excluded"
NO_DISCOUNT = "no discount on this line"
NOTHING_LEFT = "nothing left to pay"
NO_POINTS = "no points on this line"
CUT_BY_MIN_PRICE = "cut by min price"
EXCLUSIVE_SMALLER = "exclusive smaller than combinable set"
UNITS_USED_BY_OTHER_LINES = "usage limit used up by other lines"


def lost_to_exclusive(offer_id: str) -> str:
    return f"lost to exclusive {offer_id}"


def combinable_set_smaller(offer_id: str) -> str:
    return f"combinable set smaller than exclusive {offer_id}"


def combinable_set_equal(offer_id: str) -> str:
    return f"combinable set equal to exclusive {offer_id}, a tie goes to the exclusive"


_NO_BENEFITS: tuple[AppliedBenefit, ...] = ()
_NO_REJECTED: tuple[RejectedCandidate, ...] = ()

Coverage = dict[tuple[Rule, int], int]  # (units-limited rule, line index) -> thousandths


def calculate(
    snapshot: Snapshot,
    receipt: Receipt,
    *,
    explain: bool = False,
    points: PointsRequest | None = None,
) -> ReceiptResult:
    """The benefits of every line of the receipt, in request order; totals are exact sums.

    The receipt is assumed valid (engine.validation.validate_receipt). With explain=True
    each line also lists the candidates that were considered and lost, with the reason.
    With `points`, the points asked for are spent on the settled lines (engine.points_spend).
    """
    context = ReceiptContext(snapshot, receipt)
    individual = individual_rules_for(snapshot, receipt.member)
    entries = snapshot.entries
    lines = receipt.lines
    results: list[LineResult | None] = []
    deferred: list[tuple[int, Product | None, LinePlan]] = []
    unknown: set[str] | None = None
    for index, line in enumerate(lines):
        entry = entries.get(line.sku)
        product: Product | None
        if entry is None:
            product, plan = None, snapshot.unknown_sku_plan
            if unknown is None:
                unknown = set()
            unknown.add(line.sku)
        else:
            product, groups, plan = entry
            if individual is not None:  # the member's memo first: most SKUs repeat
                own = individual.by_line.get(line.sku)
                plan = own if own is not None else individual.plan_for(line.sku, groups, plan)
        result = _evaluate_line(line, index, product, plan, context, None, explain)
        if result is None:
            deferred.append((index, product, plan))
        results.append(result)

    if deferred:
        coverage = _spread_units_limits(lines, deferred, context)
        for index, product, plan in deferred:
            results[index] = _evaluate_line(
                lines[index], index, product, plan, context, coverage, explain
            )

    line_results: tuple[LineResult, ...] = tuple(results)  # type: ignore[arg-type]
    total_amount = total_discount = total_points = 0
    for result in line_results:
        total_amount += result.amount
        total_discount += result.discount
        total_points += result.points
    usage, usage_left = _usage_charges(context)
    settled = ReceiptResult(
        receipt_id=receipt.receipt_id,
        lines=line_results,
        total_amount=total_amount,
        total_discount=total_discount,
        total_paid=total_amount - total_discount,
        total_points=total_points,
        unknown_skus=tuple(sorted(unknown)) if unknown else (),
        usage=usage,
        usage_left=usage_left,
        configuration_version=snapshot.configuration_version,
    )
    # receipt-level steps after the lines are settled: chips rewards change discounts, so
    # points spread over what is left to pay after them (spec §20, then spec §21)
    if snapshot.chips is not None:
        settled = apply_chips(snapshot, context, receipt, settled)
    if points is not None:
        settled = spend_points(snapshot, [line.quantity for line in lines], settled, points)
    return settled


# Each loop over a plan's candidates skips the ones this receipt rules out, inline (this
# runs for every candidate of every line): `roles` memoises role_of for the receipt; a
# units-limited candidate applies only where the spread gave the line a share (`covered`).


def _evaluate_line(
    line: Line,
    index: int,
    product: Product | None,
    plan: LinePlan,
    context: ReceiptContext,
    coverage: Coverage | None,
    explain: bool,
) -> LineResult | None:
    """One line's result; None when a units-limited candidate needs the spread first.

    The steps, on the candidates of the line's plan that pass the receipt's filters: option
    A (the best exclusive), option B (the combinable sequence), the better of the two under
    the min-price cap, then the bonuses.
    """
    amount = line.amount
    known = product is not None
    if product is not None and product.excluded:
        rejected = _all_rejected((*plan.wide, *plan.own), PRODUCT_EXCLUDED) if explain else ()
        return new_line_result(
            line.line_id, line.sku, amount, 0, amount, 0, _NO_BENEFITS, known, rejected
        )
    if plan.empty:
        return new_line_result(
            line.line_id, line.sku, amount, 0, amount, 0, _NO_BENEFITS, known, _NO_REJECTED
        )
    if plan.limited and coverage is None:
        return None
    quantity = line.quantity
    losers: list[RejectedCandidate] | None = None
    exclusives: list[tuple[Rule, int]] | None = None
    if explain:
        losers, exclusives = [], []
    covered = _line_coverage(plan, index, context, coverage, losers)
    best, best_value = _best_exclusive(
        plan.exclusive, context, amount, quantity, covered, exclusives
    )
    steps, combined = _combinable_sequence(
        plan.combinable, context, amount, quantity, covered, losers
    )
    # the better option (B wins only if it gives more; a tie goes to A), under the cap
    if losers is not None and exclusives is not None:
        _explain_options(losers, exclusives, steps, best, best_value, combined)
    if combined > best_value:
        applied, total = steps, combined
    elif best is not None:
        applied, total = [(best, best_value)], best_value
    else:
        applied, total = steps, 0  # empty: nothing gives anything
    if total:  # the cap: never below min price x quantity, nor below zero
        most = amount - min_price_floor(product, quantity)
        if most < 0:
            most = 0
        if total > most:
            total = _cut(applied, total - most, losers)
    paid = amount - total
    benefits, points = _benefits(applied, plan.bonus, paid, context, quantity, covered, losers)
    rejected = tuple(losers) if losers else _NO_REJECTED
    return new_line_result(
        line.line_id, line.sku, amount, total, paid, points, benefits, known, rejected
    )


def _line_coverage(
    plan: LinePlan,
    index: int,
    context: ReceiptContext,
    coverage: Coverage | None,
    losers: list[RejectedCandidate] | None,
) -> dict[Rule, int] | None:
    """The shares of their limits the units-limited candidates have on this line (None: the
    plan has none); explain mode lists the candidates that cannot apply here in `losers`."""
    covered: dict[Rule, int] | None = None
    if plan.limited:
        assert coverage is not None  # the line waited for the spread
        covered = {}
        for rule in plan.limited:
            if context.role_of(rule) is UNITS_LIMITED:
                share = coverage.get((rule, index), 0)
                if share > 0:
                    covered[rule] = share
    if losers is not None:
        _explain_unavailable(plan, context, covered, losers)
    return covered


def _explain_unavailable(
    plan: LinePlan,
    context: ReceiptContext,
    covered: dict[Rule, int] | None,
    losers: list[RejectedCandidate],
) -> None:
    """The receipt-wide candidates the filters rule out, then the line's own ones, and the
    units-limited ones other lines used up, in candidate order."""
    for rule in plan.wide:
        if context.role_of(rule) is INELIGIBLE:
            losers.append(_rejected(rule, context.reasons[rule]))
    for rule in plan.own:
        role = context.role_of(rule)
        if role is INELIGIBLE:
            losers.append(_rejected(rule, context.reasons[rule]))
        elif role is UNITS_LIMITED and not _has_share(rule, covered):
            losers.append(_rejected(rule, UNITS_USED_BY_OTHER_LINES))
    for rule in plan.wide:
        if context.role_of(rule) is UNITS_LIMITED and not _has_share(rule, covered):
            losers.append(_rejected(rule, UNITS_USED_BY_OTHER_LINES))


def _has_share(rule: Rule, covered: dict[Rule, int] | None) -> bool:
    return covered is not None and rule in covered


def _best_exclusive(
    candidates: tuple[Rule, ...],
    context: ReceiptContext,
    amount: int,
    quantity: int,
    covered: dict[Rule, int] | None,
    exclusives: list[tuple[Rule, int]] | None,
) -> tuple[Rule | None, int]:
    """Option A: the largest exclusive discount; ties: higher priority, then smaller offer
    id. Explain mode lists each in `exclusives`."""
    best: Rule | None = None
    best_value = 0
    roles, role_of = context.roles, context.role_of
    for rule in candidates:
        role = roles.get(rule) or role_of(rule)
        if role is INELIGIBLE or (role is UNITS_LIMITED and not _has_share(rule, covered)):
            continue
        bp = rule.basis_points
        if bp is None:
            value = discount_on(rule.kind, rule.value, amount, quantity)
        else:  # a percentage (money.percent_of), inline: the case of most candidates
            value = (amount * bp * 2 + 10000) // 20000
            if value > amount:
                value = amount
        if covered is not None and rule in covered:
            value = covered_share(value, covered[rule], quantity)
        if value > best_value or (
            value == best_value and value and best is not None and rule.sort_key < best.sort_key
        ):
            best, best_value = rule, value
        if exclusives is not None:
            exclusives.append((rule, value))
    return best, best_value


def _combinable_sequence(
    candidates: tuple[Rule, ...],
    context: ReceiptContext,
    amount: int,
    quantity: int,
    covered: dict[Rule, int] | None,
    losers: list[RejectedCandidate] | None,
) -> tuple[list[tuple[Rule, int]], int]:
    """Option B: every combinable discount on what is left to pay, in priority order;
    returns the steps that gave something and their sum."""
    steps: list[tuple[Rule, int]] = []
    remaining = amount
    roles, role_of = context.roles, context.role_of
    for rule in candidates:
        role = roles.get(rule) or role_of(rule)
        if role is INELIGIBLE or (role is UNITS_LIMITED and not _has_share(rule, covered)):
            continue
        bp = rule.basis_points
        if bp is None:
            value = discount_on(rule.kind, rule.value, remaining, quantity)
        else:  # a percentage of what is left (money.percent_of), inline
            value = (remaining * bp * 2 + 10000) // 20000
            if value > remaining:
                value = remaining
        if covered is not None and rule in covered:
            value = covered_share(value, covered[rule], quantity)
        if value > 0:
            steps.append((rule, value))
            remaining -= value
        elif losers is not None:
            losers.append(_rejected(rule, NOTHING_LEFT if remaining <= 0 else NO_DISCOUNT))
    return steps, amount - remaining


def _benefits(
    applied: list[tuple[Rule, int]],
    bonuses: tuple[Rule, ...],
    paid: int,
    context: ReceiptContext,
    quantity: int,
    covered: dict[Rule, int] | None,
    losers: list[RejectedCandidate] | None,
) -> tuple[tuple[AppliedBenefit, ...], int]:
    """The applied discounts, then every bonus on the final paid amount in priority order;
    usage limits charged for what applied. Returns the benefits and the points."""
    benefits = []
    for rule, value in applied:
        benefits.append(
            new_applied_benefit(rule.offer_id, rule.mechanic, rule.kind, value, 0, rule.text)
        )
        if rule.usage_limit is not None:
            _charge(context, rule, covered, quantity)
    points = 0
    roles, role_of = context.roles, context.role_of
    for rule in bonuses:
        role = roles.get(rule) or role_of(rule)
        if role is INELIGIBLE or (role is UNITS_LIMITED and not _has_share(rule, covered)):
            continue
        bp = rule.basis_points
        value = (paid * bp * 2 + 10000) // 20000 if bp is not None and paid > 0 else 0
        if covered is not None and rule in covered:
            value = covered_share(value, covered[rule], quantity)
        if value <= 0:
            if losers is not None:
                losers.append(_rejected(rule, NO_POINTS))
            continue
        points += value
        benefits.append(
            new_applied_benefit(rule.offer_id, rule.mechanic, rule.kind, 0, value, rule.text)
        )
        if rule.usage_limit is not None:
            _charge(context, rule, covered, quantity)
    return tuple(benefits), points


def _spread_units_limits(
    lines: tuple[Line, ...],
    deferred: list[tuple[int, Product | None, LinePlan]],
    context: ReceiptContext,
) -> Coverage:
    """Spread each units-limited rule's remaining quantity over the lines it matches, in
    line_id order: each line covered up to its quantity until nothing remains."""
    matching: dict[Rule, list[tuple[str, int, int]]] = {}
    for index, product, plan in deferred:
        if product is not None and product.excluded:
            continue
        line = lines[index]
        for rule in plan.limited:
            if context.role_of(rule) is not UNITS_LIMITED or not _gives_something(rule, line):
                continue
            matching.setdefault(rule, []).append((line.line_id, index, line.quantity))
    coverage: Coverage = {}
    for rule, matched in matching.items():
        remaining = context.remaining_use(rule)
        for _line_id, index, quantity in sorted(matched):
            share = quantity if quantity < remaining else remaining
            coverage[(rule, index)] = share
            remaining -= share
    return coverage


def _cut(
    applied: list[tuple[Rule, int]], excess: int, losers: list[RejectedCandidate] | None
) -> int:
    """Take `excess` off the applied discounts, the last applied first: reduce it, drop it
    when it reaches zero, then the one before. Returns the new total."""
    while excess > 0:
        rule, value = applied[-1]
        if value > excess:
            applied[-1] = (rule, value - excess)
            break
        applied.pop()
        excess -= value
        if losers is not None:
            losers.append(_rejected(rule, CUT_BY_MIN_PRICE, value))
    return sum(value for _, value in applied)


def _rejected(rule: Rule, reason: str, discount: int = 0) -> RejectedCandidate:
    return RejectedCandidate(rule.offer_id, rule.mechanic, reason, discount)


def _charge(
    context: ReceiptContext, rule: Rule, covered: dict[Rule, int] | None, quantity: int
) -> None:
    """Record that a limited rule was applied on a line: the quantity it covered."""
    share = covered.get(rule, quantity) if covered is not None else quantity
    charges = context.charges
    charges[rule] = charges.get(rule, 0) + share


def _usage_charges(
    context: ReceiptContext,
) -> tuple[tuple[UsageCharge, ...], tuple[tuple[str, int], ...]]:
    """One charge per limited rule applied on the receipt: 1 receipt, or the units covered;
    and what is left of each limit once the receipt is confirmed. Nothing is charged without
    a member (the limit is per member)."""
    if not context.charges or context.member is None:
        return (), ()
    charges = []
    left = []
    for rule, quantity in context.charges.items():
        limit = rule.usage_limit
        assert limit is not None
        used = quantity if limit.unit is LimitUnit.UNITS else 1
        offer_id, period = context.usage_key(rule)
        charges.append(UsageCharge(offer_id, period, used))
        left.append((offer_id, max(context.remaining_use(rule) - used, 0)))
    charges.sort(key=lambda charge: (charge.offer_id, charge.period_key))
    return tuple(charges), tuple(sorted(left))


def _gives_something(rule: Rule, line: Line) -> bool:
    if rule.is_bonus:
        return points_on(rule.value, line.amount) > 0
    return discount_on(rule.kind, rule.value, line.amount, line.quantity) > 0


def _all_rejected(candidates: tuple[Rule, ...], reason: str) -> tuple[RejectedCandidate, ...]:
    return tuple(_rejected(rule, reason) for rule in candidates)


def _explain_options(
    losers: list[RejectedCandidate],
    exclusives: list[tuple[Rule, int]],
    steps: list[tuple[Rule, int]],
    best: Rule | None,
    best_value: int,
    combined: int,
) -> None:
    """Explain mode: why the exclusive or the combinable candidates lost on this line."""
    combinable_won = combined > best_value
    for rule, value in exclusives:
        if value <= 0:
            reason = NO_DISCOUNT
        elif combinable_won:
            reason = EXCLUSIVE_SMALLER
        elif rule is best:
            continue
        else:
            assert best is not None
            reason = lost_to_exclusive(best.offer_id)
        losers.append(_rejected(rule, reason, value))
    if combinable_won or best is None:
        return
    for rule, value in steps:
        if combined < best_value:
            reason = combinable_set_smaller(best.offer_id)
        else:
            reason = combinable_set_equal(best.offer_id)
        losers.append(_rejected(rule, reason, value))
