"""Valuing one benefit on one line (spec §5), in integers, rounded half up per line.

    PERCENT          discount = base x bp / 10000
    AMOUNT_PER_UNIT  discount = value x quantity / 1000
    FIXED_PRICE      discount = base - price x quantity / 1000, if positive
    BONUS_PERCENT    points   = paid x bp / 10000

`base` is the line amount, or for combinable benefits what is left to pay. A discount is
never negative nor above its base; a negative benefit value gives nothing.
Both shares round half up (service/engine/money.py: percent_of, per_thousand).
"""

from __future__ import annotations

from service.engine.model import BenefitKind, Product
from service.engine.money import per_thousand, percent_of

_PERCENT = BenefitKind.PERCENT
_AMOUNT_PER_UNIT = BenefitKind.AMOUNT_PER_UNIT
_FIXED_PRICE = BenefitKind.FIXED_PRICE


def discount_on(kind: BenefitKind, value: int, base: int, quantity: int) -> int:
    """The discount a benefit gives on `base` for `quantity` thousandths; 0 for a bonus."""
    if value < 0 or base <= 0:
        return 0
    if kind is _PERCENT:
        discount = percent_of(base, value)
    elif kind is _AMOUNT_PER_UNIT:
        discount = per_thousand(value, quantity)
    elif kind is _FIXED_PRICE:
        discount = base - per_thousand(value, quantity)
    else:
        return 0
    if discount <= 0:
        return 0
    return base if discount > base else discount


def points_on(value: int, paid: int) -> int:
    """Bonus points for basis points `value` on the paid amount."""
    if value <= 0 or paid <= 0:
        return 0
    return percent_of(paid, value)


def min_price_floor(product: Product | None, quantity: int) -> int:
    """The least the line may be paid: min price x quantity / 1000 (half up), or 0."""
    if product is None or product.min_price is None or product.min_price <= 0:
        return 0
    return per_thousand(product.min_price, quantity)


def covered_share(value: int, covered: int, quantity: int) -> int:
    """A line value for the covered part of the quantity only (usage limits in units)."""
    if covered >= quantity:
        return value
    return (value * covered * 2 + quantity) // (quantity * 2)
