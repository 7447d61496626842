"""Line plans: a SKU's candidates for one buyer, split by what they do, prepared once.

What a line can get depends on the receipt in two ways only: which candidates pass the
receipt's filters (engine.eligibility, memoised per receipt) and the line's amount and
quantity. Everything else, which offers cover the SKU, what each does and the order they are
tried in, is fixed for a snapshot and a member. A plan holds that part, so a line only looks
its plan up, skips the candidates the receipt filters out and does the integer arithmetic.

Plans are immutable, so any number of threads may read them. The snapshot builds one per
distinct set of groups (products that share groups share the plan) and one for unknown SKUs;
engine.individual builds a member's own plans for the SKUs their terms touch. Both live as
long as the snapshot or the member object they were built from: a new snapshot or a changed
member (a new object) gets new plans, nothing is ever invalidated by hand.
"""

from __future__ import annotations

from service.engine.rules import BONUS, COMBINABLE, EXCLUSIVE, Rule, order_of


class LinePlan:
    """The candidates of a line, in the order the calculation tries them (spec §5, 6).

    `wide` are the "all products" offers, `own` the line's own candidates (offers scoped to
    its groups, the member's individual rules), sorted; both as listed in explain mode.
    `exclusive` is option A's candidates, `combinable` option B's sequence and `bonus` the
    bonuses, each in candidate order, whether or not a receipt's filters let them apply.
    `limited` are the candidates with a usage limit in units: a line with one waits for the
    receipt's spread of that limit (engine.calculate).
    """

    __slots__ = ("wide", "own", "exclusive", "combinable", "bonus", "limited", "empty")

    def __init__(self, wide: tuple[Rule, ...], own: tuple[Rule, ...]) -> None:
        self.wide = wide
        self.own = own
        wide_limited = tuple(rule for rule in wide if rule.units_limited)
        # own first, then the receipt-wide ones with a units limit, then the others: the
        # order explain mode has always listed exclusive candidates in
        self.exclusive = tuple(
            rule
            for rule in (*own, *wide_limited, *(r for r in wide if not r.units_limited))
            if rule.role is EXCLUSIVE
        )
        merged = sorted((*own, *wide), key=order_of)
        self.combinable = tuple(rule for rule in merged if rule.role is COMBINABLE)
        self.bonus = tuple(rule for rule in merged if rule.role is BONUS)
        self.limited = tuple(rule for rule in own if rule.units_limited) + wide_limited
        self.empty = not (wide or own)

    def with_own(self, own: tuple[Rule, ...]) -> LinePlan:
        """The same receipt-wide offers with other own candidates (a member's)."""
        return LinePlan(self.wide, own)
