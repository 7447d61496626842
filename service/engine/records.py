"""Fast constructors for the result records the hot path creates per line.

`Line`, `LineResult` and `AppliedBenefit` are frozen slotted dataclasses; their generated
__init__ sets every field through object.__setattr__, which costs about three times as much
as plain attribute writes. These constructors build exactly the same objects (same type,
same field values, equal to ones built normally): a draft class with the same slots writes
the attributes, then the object takes the record's class.

If a field is ever added to either dataclass, the import-time check below fails, so that
these constructors are updated together with model.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, cast

from service.engine.model import (
    AppliedBenefit,
    BenefitKind,
    Line,
    LineResult,
    Mechanic,
    RejectedCandidate,
)


def _fields(cls: type[Any], expected: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(f.name for f in dataclasses.fields(cls))
    if names != expected:
        raise ImportError(f"{cls.__name__} fields changed: {names}; update engine/records.py")
    return names


# Each draft has exactly the slots of its record, in the same order, so an instance may
# become the record by assigning __class__ (CPython allows it between classes of the same
# layout); its __init__ writes plain attributes, which is what makes it fast.


class _LineDraft:
    __slots__ = _fields(Line, ("line_id", "sku", "quantity", "price", "amount"))

    def __init__(self, line_id: str, sku: str, quantity: int, price: int, amount: int) -> None:
        self.line_id = line_id
        self.sku = sku
        self.quantity = quantity
        self.price = price
        self.amount = amount
        self.__class__ = Line  # type: ignore[assignment]


class _LineResultDraft:
    __slots__ = _fields(
        LineResult,
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

    def __init__(
        self,
        line_id: str,
        sku: str,
        amount: int,
        discount: int,
        paid: int,
        points: int,
        benefits: tuple[AppliedBenefit, ...],
        known_sku: bool,
        rejected: tuple[RejectedCandidate, ...],
    ) -> None:
        self.line_id = line_id
        self.sku = sku
        self.amount = amount
        self.discount = discount
        self.paid = paid
        self.points = points
        self.benefits = benefits
        self.known_sku = known_sku
        self.rejected = rejected
        self.__class__ = LineResult  # type: ignore[assignment]


class _AppliedBenefitDraft:
    __slots__ = _fields(
        AppliedBenefit, ("offer_id", "mechanic", "kind", "discount", "points", "text")
    )

    def __init__(
        self,
        offer_id: str,
        mechanic: Mechanic,
        kind: BenefitKind,
        discount: int,
        points: int,
        text: str,
    ) -> None:
        self.offer_id = offer_id
        self.mechanic = mechanic
        self.kind = kind
        self.discount = discount
        self.points = points
        self.text = text
        self.__class__ = AppliedBenefit  # type: ignore[assignment]


# Line(line_id, sku, quantity, price, amount): for translating requests on the hot path
new_line = cast(Callable[[str, str, int, int, int], Line], _LineDraft)
# LineResult(line_id, sku, amount, discount, paid, points, benefits, known_sku, rejected)
new_line_result = cast(Callable[..., LineResult], _LineResultDraft)
# AppliedBenefit(offer_id, mechanic, kind, discount, points, text)
new_applied_benefit = cast(Callable[..., AppliedBenefit], _AppliedBenefitDraft)
