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

from collections.abc import Sequence

from service.engine.chips import apply_chips
from service.engine.eligibility import ReceiptContext
from service.engine.individual import individual_rules_for
from service.engine.model import (
    AppliedBenefit,
    BenefitKind,
    LimitUnit,
    Line,
    LineResult,
    Product,
    Receipt,
    ReceiptResult,
    RejectedCandidate,
    UsageCharge,
)
from service.engine.points_spend import PointsRequest, spend_points
from service.engine.records import new_applied_benefit, new_line_result
from service.engine.rules import BONUS, COMBINABLE, EXCLUSIVE, UNITS_LIMITED, Rule
from service.engine.snapshot import Snapshot, order_of
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
_NO_RULES: tuple[Rule, ...] = ()
_NO_REJECTED: tuple[RejectedCandidate, ...] = ()

Coverage = dict[tuple[Rule, int], int]  # (units-limited rule, line index) -> thousandths


class _ReceiptWide:
    """The "all products" offers of the snapshot, filtered once for the receipt and split by
    their role; every line then only looks at the offers scoped to its own groups."""

    __slots__ = (
        "exclusive",
        "all_exclusive",
        "combinable",
        "bonus",
        "units_limited",
        "all",
        "empty",
    )

    def __init__(self, rules: tuple[Rule, ...], context: ReceiptContext) -> None:
        self.all = rules
        exclusive: list[Rule] = []
        combinable: list[Rule] = []
        bonus: list[Rule] = []
        units_limited: list[Rule] = []
        for rule in rules:
            role = context.role_of(rule)
            if role is EXCLUSIVE:
                exclusive.append(rule)
            elif role is COMBINABLE:
                combinable.append(rule)
            elif role is BONUS:
                bonus.append(rule)
            elif role is UNITS_LIMITED:
                units_limited.append(rule)
        self.all_exclusive = tuple(exclusive)
        self.exclusive = _undominated(exclusive)
        self.combinable = tuple(combinable)
        self.bonus = tuple(bonus)
        self.units_limited = tuple(units_limited)
        self.empty = not (exclusive or combinable or bonus or units_limited)


def _undominated(exclusive: list[Rule]) -> tuple[Rule, ...]:
    """The exclusive rules that can win on some line. A rule cannot if an earlier one (in
    candidate order, so it wins ties) of the same kind always gives at least as much: a
    larger or equal percentage or amount per unit, a smaller or equal fixed price. Rules
    with a negative value never give anything."""
    kept: list[Rule] = []
    best_by_kind: dict[BenefitKind, int] = {}
    for rule in exclusive:
        value = rule.value
        if value < 0:
            continue
        seen = best_by_kind.get(rule.kind)
        if seen is not None and (
            seen <= value if rule.kind is BenefitKind.FIXED_PRICE else seen >= value
        ):
            continue
        best_by_kind[rule.kind] = value
        kept.append(rule)
    return tuple(kept)


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
    wide = _ReceiptWide(snapshot.all_products_rules, context)
    individual = individual_rules_for(snapshot, receipt.member)
    entries = snapshot.entries
    lines = receipt.lines
    results: list[LineResult | None] = []
    products: list[Product | None] = []  # per line, for the receipt-level steps after
    deferred: list[tuple[int, Product | None, tuple[Rule, ...]]] = []
    unknown: set[str] | None = None
    for index, line in enumerate(lines):
        entry = entries.get(line.sku)
        product: Product | None
        if entry is None:
            product, scoped = None, _NO_RULES
            if unknown is None:
                unknown = set()
            unknown.add(line.sku)
        else:
            product, groups, scoped = entry
            if individual is not None:  # the member's memo first: most SKUs repeat
                own = individual.by_line.get(line.sku)
                scoped = (
                    own if own is not None else individual.line_candidates(line.sku, groups, scoped)
                )
        products.append(product)
        result = _evaluate_line(line, index, product, scoped, wide, context, None, explain)
        if result is None:
            deferred.append((index, product, scoped))
        results.append(result)

    if deferred:
        coverage = _spread_units_limits(lines, deferred, wide, context)
        for index, product, scoped in deferred:
            results[index] = _evaluate_line(
                lines[index], index, product, scoped, wide, context, coverage, explain
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
        settled = apply_chips(snapshot, context, receipt, settled, products)
    if points is not None:
        settled = spend_points(products, [line.quantity for line in lines], settled, points)
    return settled


# What _split_by_role finds on a line, as a plain tuple (this runs for every line): its own
# exclusive, combinable and bonus rules (None: none), and units-limited rules -> the
# quantity they cover here (None: none).
_Split = tuple[list[Rule] | None, list[Rule] | None, list[Rule] | None, dict[Rule, int] | None]


def _evaluate_line(
    line: Line,
    index: int,
    product: Product | None,
    scoped: tuple[Rule, ...],
    wide: _ReceiptWide,
    context: ReceiptContext,
    coverage: Coverage | None,
    explain: bool,
) -> LineResult | None:
    """One line's result; None when a units-limited candidate needs the spread first.

    `scoped` are the line's own candidates (offers scoped to its groups, the member's
    individual rules), sorted; `wide` the receipt's eligible "all products" offers. The
    steps: split the candidates by role, option A (the best exclusive), option B (the
    combinable sequence), the better of the two under the min-price cap, then the bonuses.
    """
    amount = line.amount
    known = product is not None
    if product is not None and product.excluded:
        rejected = _all_rejected((*wide.all, *scoped), PRODUCT_EXCLUDED) if explain else ()
        return new_line_result(
            line.line_id, line.sku, amount, 0, amount, 0, _NO_BENEFITS, known, rejected
        )
    if not scoped and wide.empty and not explain:
        return new_line_result(
            line.line_id, line.sku, amount, 0, amount, 0, _NO_BENEFITS, known, _NO_REJECTED
        )
    if wide.units_limited:
        if coverage is None:
            return None
        scoped = (*scoped, *wide.units_limited)
    quantity = line.quantity
    losers: list[RejectedCandidate] | None = None
    exclusives: list[tuple[Rule, int]] | None = None
    if explain:
        losers = [_rejected(r, context.reasons[r]) for r in wide.all if r in context.reasons]
        exclusives = []
    found = _split_by_role(scoped, index, context, coverage, losers)
    if found is None:
        return None
    own_exclusive, own_combinable, own_bonuses, covered = found
    receipt_exclusive = wide.all_exclusive if explain else wide.exclusive
    if own_exclusive is not None or receipt_exclusive:
        best, best_value = _best_exclusive(
            own_exclusive, receipt_exclusive, amount, quantity, covered, exclusives
        )
    else:
        best, best_value = None, 0
    if wide.combinable or own_combinable is not None:
        steps, combined = _combinable_sequence(
            wide.combinable, own_combinable, amount, quantity, covered, losers
        )
    else:
        steps, combined = [], 0
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
    benefits, points = _benefits(
        applied, wide.bonus, own_bonuses, paid, context, quantity, covered, losers
    )
    rejected = tuple(losers) if losers else _NO_REJECTED
    return new_line_result(
        line.line_id, line.sku, amount, total, paid, points, benefits, known, rejected
    )


def _split_by_role(
    scoped: tuple[Rule, ...],
    index: int,
    context: ReceiptContext,
    coverage: Coverage | None,
    losers: list[RejectedCandidate] | None,
) -> _Split | None:
    """The line's own candidates by role (exclusive, combinable, bonus), units-limited ones
    with their share of the limit; the ineligible ones go to `losers` (explain). None when a
    units-limited one needs the spread first."""
    exclusive: list[Rule] | None = None
    combinable: list[Rule] | None = None
    bonuses: list[Rule] | None = None
    covered: dict[Rule, int] | None = None
    roles = context.roles
    for rule in scoped:
        role = roles.get(rule)
        if role is None:
            role = context.role_of(rule)
        if role is UNITS_LIMITED:
            if coverage is None:
                return None
            share = coverage.get((rule, index), 0)
            if share <= 0:
                if losers is not None:
                    losers.append(_rejected(rule, UNITS_USED_BY_OTHER_LINES))
                continue
            if covered is None:
                covered = {}
            covered[rule] = share
            role = rule.role
        if role is EXCLUSIVE:
            if exclusive is None:
                exclusive = [rule]
            else:
                exclusive.append(rule)
        elif role is COMBINABLE:
            if combinable is None:
                combinable = [rule]
            else:
                combinable.append(rule)
        elif role is BONUS:
            if bonuses is None:
                bonuses = [rule]
            else:
                bonuses.append(rule)
        elif losers is not None:
            losers.append(_rejected(rule, context.reasons[rule]))
    return exclusive, combinable, bonuses, covered


def _best_exclusive(
    own: list[Rule] | None,
    receipt_wide: tuple[Rule, ...],
    amount: int,
    quantity: int,
    covered: dict[Rule, int] | None,
    exclusives: list[tuple[Rule, int]] | None,
) -> tuple[Rule | None, int]:
    """Option A: the largest exclusive discount, the line's own and the receipt's; ties:
    higher priority, then smaller offer id. Explain mode lists each in `exclusives`."""
    best: Rule | None = None
    best_value = 0
    for rule in (*own, *receipt_wide) if own is not None else receipt_wide:
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
    receipt_wide: tuple[Rule, ...],
    own: list[Rule] | None,
    amount: int,
    quantity: int,
    covered: dict[Rule, int] | None,
    losers: list[RejectedCandidate] | None,
) -> tuple[list[tuple[Rule, int]], int]:
    """Option B: every combinable discount on what is left to pay, in priority order;
    returns the steps that gave something and their sum."""
    combinable: Sequence[Rule] = receipt_wide
    if own is not None:
        combinable = sorted((*combinable, *own), key=order_of)
    steps: list[tuple[Rule, int]] = []
    remaining = amount
    for rule in combinable:
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
    receipt_wide_bonus: tuple[Rule, ...],
    own_bonuses: list[Rule] | None,
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
    bonuses: Sequence[Rule] = receipt_wide_bonus
    if own_bonuses is not None:
        bonuses = sorted((*bonuses, *own_bonuses), key=order_of)
    points = 0
    for rule in bonuses:
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


def _spread_units_limits(
    lines: tuple[Line, ...],
    deferred: list[tuple[int, Product | None, tuple[Rule, ...]]],
    wide: _ReceiptWide,
    context: ReceiptContext,
) -> Coverage:
    """Spread each units-limited rule's remaining quantity over the lines it matches, in
    line_id order: each line covered up to its quantity until nothing remains."""
    matching: dict[Rule, list[tuple[str, int, int]]] = {}
    for index, product, scoped in deferred:
        if product is not None and product.excluded:
            continue
        line = lines[index]
        for rule in (*scoped, *wide.units_limited):
            if not rule.units_limited:
                continue
            if context.role_of(rule) != UNITS_LIMITED or not _gives_something(rule, line):
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
