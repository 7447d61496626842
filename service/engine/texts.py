"""Short printable texts for applied benefits (spec §6): "Favorite product -15 %".

A text is computed once per offer (or per member's terms), never per line. An offer's own
`text` wins; otherwise the text is a label for the mechanic and the benefit:

    PERCENT          "<label> -15 %"
    AMOUNT_PER_UNIT  "<label> -10.00 per unit"
    FIXED_PRICE      "<label> price 89.90"
    BONUS_PERCENT    "Bonus +5 %"

Money is printed as minor units / 100 with two decimals; basis points as a percentage
without trailing zeros (1500 -> "15", 1250 -> "12.5").
"""

from __future__ import annotations

from service.engine.model import Benefit, BenefitKind, Mechanic

MAX_LABEL_LENGTH = 24

_MECHANIC_LABELS = {
    Mechanic.MEMBERS_ONLY: "Members",
    Mechanic.FAVORITE_PRODUCTS: "Favorite product",
    Mechanic.FAVORITE_CATEGORIES: "Favorite category",
    Mechanic.PERSONALIZED_OFFER: "Personal offer",
}


def format_money(minor_units: int) -> str:
    """8990 -> "89.90", 5 -> "0.05", -150 -> "-1.50"."""
    sign = "-" if minor_units < 0 else ""
    whole, cents = divmod(abs(minor_units), 100)
    return f"{sign}{whole}.{cents:02d}"


def format_percent(basis_points: int) -> str:
    """1500 -> "15", 1250 -> "12.5", 1234 -> "12.34", 5 -> "0.05"."""
    sign = "-" if basis_points < 0 else ""
    whole, hundredths = divmod(abs(basis_points), 100)
    if hundredths == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{hundredths:02d}".rstrip("0")


def benefit_text(benefit: Benefit) -> str:
    """The benefit alone: "-15 %", "-10.00 per unit", "price 89.90", "+5 %"."""
    kind = benefit.kind
    if kind is BenefitKind.PERCENT:
        return f"-{format_percent(benefit.value)} %"
    if kind is BenefitKind.AMOUNT_PER_UNIT:
        return f"-{format_money(benefit.value)} per unit"
    if kind is BenefitKind.FIXED_PRICE:
        return f"price {format_money(benefit.value)}"
    if kind is BenefitKind.CHIPS:
        return f"+{benefit.value} chips"
    return f"+{format_percent(benefit.value)} %"


def mechanic_label(mechanic: Mechanic, name: str) -> str:
    """What the receipt calls the mechanic: a fixed word, or the offer's (shortened) name."""
    label = _MECHANIC_LABELS.get(mechanic)
    if label is not None:
        return label
    name = " ".join(name.split())
    if not name:
        return "Offer"
    if len(name) > MAX_LABEL_LENGTH:
        return name[: MAX_LABEL_LENGTH - 1].rstrip() + "."
    return name


def applied_benefit_text(
    mechanic: Mechanic, name: str, benefit: Benefit, own_text: str = ""
) -> str:
    """The text printed for a benefit: the offer's own text when set, else derived."""
    if own_text:
        return own_text
    if benefit.kind is BenefitKind.BONUS_PERCENT:
        return f"Bonus {benefit_text(benefit)}"
    return f"{mechanic_label(mechanic, name)} {benefit_text(benefit)}"
