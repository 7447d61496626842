"""Fast constructors for the result records the hot path creates per line.

`LineResult` and `AppliedBenefit` are frozen slotted dataclasses; their generated __init__
sets every field through object.__setattr__, which costs about three times as much as
writing the slots directly. These functions build exactly the same objects (same type, same
field values, equal to ones built normally) by writing the slots directly.

If a field is ever added to either dataclass, the import-time check below fails, so that
these constructors are updated together with model.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from service.engine.model import (
    AppliedBenefit,
    BenefitKind,
    Line,
    LineResult,
    Mechanic,
    RejectedCandidate,
)


def _slot_setters(cls: type[Any], expected: tuple[str, ...]) -> tuple[Any, ...]:
    names = tuple(f.name for f in dataclasses.fields(cls))
    if names != expected:
        raise ImportError(f"{cls.__name__} fields changed: {names}; update engine/records.py")
    return tuple(cls.__dict__[name].__set__ for name in names)


def _line_result_constructor() -> Callable[..., LineResult]:
    # setters and the class are closure variables: cheaper to reach than globals
    new = object.__new__
    cls = LineResult
    (
        set_line_id,
        set_sku,
        set_amount,
        set_discount,
        set_paid,
        set_points,
        set_benefits,
        set_known_sku,
        set_rejected,
    ) = _slot_setters(
        cls,
        (
            "line_id",
            "sku",
            "amount",
            "discount",
            "paid",
            "points",
            "benefits",
            "known_sku",
            "rejected",
        ),
    )

    def new_line_result(
        line_id: str,
        sku: str,
        amount: int,
        discount: int,
        paid: int,
        points: int,
        benefits: tuple[AppliedBenefit, ...],
        known_sku: bool,
        rejected: tuple[RejectedCandidate, ...],
    ) -> LineResult:
        result: LineResult = new(cls)
        set_line_id(result, line_id)
        set_sku(result, sku)
        set_amount(result, amount)
        set_discount(result, discount)
        set_paid(result, paid)
        set_points(result, points)
        set_benefits(result, benefits)
        set_known_sku(result, known_sku)
        set_rejected(result, rejected)
        return result

    return new_line_result


def _applied_benefit_constructor() -> Callable[..., AppliedBenefit]:
    new = object.__new__
    cls = AppliedBenefit
    set_offer_id, set_mechanic, set_kind, set_discount, set_points, set_text = _slot_setters(
        cls, ("offer_id", "mechanic", "kind", "discount", "points", "text")
    )

    def new_applied_benefit(
        offer_id: str, mechanic: Mechanic, kind: BenefitKind, discount: int, points: int, text: str
    ) -> AppliedBenefit:
        benefit: AppliedBenefit = new(cls)
        set_offer_id(benefit, offer_id)
        set_mechanic(benefit, mechanic)
        set_kind(benefit, kind)
        set_discount(benefit, discount)
        set_points(benefit, points)
        set_text(benefit, text)
        return benefit

    return new_applied_benefit


def _line_constructor() -> Callable[[str, str, int, int, int], Line]:
    new = object.__new__
    cls = Line
    set_line_id, set_sku, set_quantity, set_price, set_amount = _slot_setters(
        cls, ("line_id", "sku", "quantity", "price", "amount")
    )

    def new_line(line_id: str, sku: str, quantity: int, price: int, amount: int) -> Line:
        line: Line = new(cls)
        set_line_id(line, line_id)
        set_sku(line, sku)
        set_quantity(line, quantity)
        set_price(line, price)
        set_amount(line, amount)
        return line

    return new_line


# Line(line_id, sku, quantity, price, amount): for translating requests on the hot path
new_line = _line_constructor()
# LineResult(line_id, sku, amount, discount, paid, points, benefits, known_sku, rejected)
new_line_result = _line_result_constructor()
# AppliedBenefit(offer_id, mechanic, kind, discount, points, text)
new_applied_benefit = _applied_benefit_constructor()
