"""What the back office and the attribute import may define, whatever the wire: the ranges of
offer terms (benefit values, money, usage limits, selection frequencies), validity windows,
and a category tree without cycles. One home for these rules: the back-office servicer
(service/api/catalogue_convert.py), the catalogue use cases (service/app/catalogue.py) and
the import's row checks (service/imports/records.py) all call them.

Each check raises InvalidArgument naming the field at fault, in the caller's words
(`offer.benefit.value` on the wire, `benefit_value` in a file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from service.engine.model import Benefit, BenefitKind, Category, Level, UsageLimit
from service.errors import InvalidArgument
from service.limits import quote

MAX_BASIS_POINTS = 10_000  # 100 %
MAX_MONEY = 10**12  # minor units per unit; anything above is absurd
MAX_USAGE_LIMIT = 10**12  # receipts, or thousandths of a unit
MAX_EVERY_N_DAYS = 3660  # ten years: the next allowed change stays in the calendar
MAX_CHIPS = 10**6  # chips per grant or per reward unit
CHIPS_LEVELS = (Level.ALL_BUYERS, Level.MEMBERS_ONLY)


def check_benefit(
    kind: BenefitKind | None,
    value: int | None,
    kind_field: str = "benefit_kind",
    field: str = "benefit_value",
) -> Benefit:
    """A benefit's kind and value: percentages in (0, 10000] basis points, money per unit
    positive (a fixed price may be 0) and at most 10^12."""
    if kind is None:
        raise InvalidArgument(kind_field, "required")
    if value is None:
        raise InvalidArgument(field, "required")
    if kind in (BenefitKind.PERCENT, BenefitKind.BONUS_PERCENT):
        if not 0 < value <= MAX_BASIS_POINTS:
            raise InvalidArgument(field, "basis points from 1 to 10000 (100 %)")
    elif kind is BenefitKind.FIXED_PRICE:
        if not 0 <= value <= MAX_MONEY:
            raise InvalidArgument(field, "a price per unit from 0 to 10^12 minor units")
    elif kind is BenefitKind.CHIPS:
        if not 0 < value <= MAX_CHIPS:
            raise InvalidArgument(field, "chips per threshold from 1 to 10^6")
    elif not 0 < value <= MAX_MONEY:
        raise InvalidArgument(field, "minor units per unit from 1 to 10^12")
    return Benefit(kind, value)


def check_chips_terms(
    level: Level,
    benefit: Benefit,
    threshold: int,
    price: int,
    usage_limit: UsageLimit | None,
    path: str = "offer",
) -> None:
    """spec §20: a grant (kind CHIPS) has a threshold > 0, a reward a chips price > 0 and a
    discount; both only at levels ALL_BUYERS and MEMBERS_ONLY, without a usage limit."""
    grant = benefit.kind is BenefitKind.CHIPS
    if not grant and threshold:
        raise InvalidArgument(f"{path}.chips_threshold", "only for benefit kind CHIPS")
    if grant and price:
        raise InvalidArgument(f"{path}.chips_price", "a reward's benefit is a discount, not CHIPS")
    if not grant and not price:
        if price < 0:
            raise InvalidArgument(f"{path}.chips_price", "must not be negative")
        return
    if grant and not 0 < threshold <= MAX_MONEY:
        raise InvalidArgument(f"{path}.chips_threshold", "minor units from 1 to 10^12")
    if not grant:
        if not 0 < price <= MAX_CHIPS:
            raise InvalidArgument(f"{path}.chips_price", "chips per unit from 1 to 10^6")
        if benefit.kind is BenefitKind.BONUS_PERCENT:
            raise InvalidArgument(f"{path}.benefit.kind", "a reward gives a discount")
    if level not in CHIPS_LEVELS:
        raise InvalidArgument(f"{path}.level", "chips offers are ALL_BUYERS or MEMBERS_ONLY")
    if usage_limit is not None:
        raise InvalidArgument(f"{path}.usage_limit", "chips offers take no usage limit")


def check_money(value: int, field: str) -> int:
    """An amount of money (a minimum price): 0 to 10^12 minor units."""
    if not 0 <= value <= MAX_MONEY:
        raise InvalidArgument(field, "from 0 to 10^12 minor units")
    return value


def check_validity(
    valid_from: datetime | None, valid_to: datetime | None, field: str = "valid_to"
) -> None:
    """A validity window [from, to): open at either end, never empty."""
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise InvalidArgument(field, "must be after valid_from")


def check_every_n_days(every_n_days: int, field: str = "every_n_days") -> int:
    """The N of an EVERY_N_DAYS selection frequency."""
    if not 1 <= every_n_days <= MAX_EVERY_N_DAYS:
        raise InvalidArgument(field, f"from 1 to {MAX_EVERY_N_DAYS} for EVERY_N_DAYS")
    return every_n_days


def check_category_tree(
    categories: Sequence[Category],
    stored_parents: Mapping[str, str | None],
    field: str = "categories",
) -> None:
    """The categories, put into the stored tree (category id -> parent id), make no cycle;
    the first one that would is named: `categories[3].parent_id`."""
    parents = dict(stored_parents)
    parents.update({c.id: c.parent_id for c in categories})
    for index, category in enumerate(categories):
        seen = {category.id}
        parent = category.parent_id
        while parent is not None:
            if parent in seen:
                raise InvalidArgument(
                    f"{field}[{index}].parent_id",
                    f"{quote(category.parent_id or '')} would make a cycle in the category tree",
                )
            seen.add(parent)
            parent = parents.get(parent)
