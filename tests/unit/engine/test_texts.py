import pytest

from service.engine.model import Benefit, BenefitKind, Mechanic
from service.engine.texts import applied_benefit_text, format_money, format_percent


@pytest.mark.parametrize(
    ("minor", "text"),
    [(8990, "89.90"), (5, "0.05"), (0, "0.00"), (100000, "1000.00"), (-150, "-1.50")],
)
def test_money_prints_as_minor_units_over_100_with_two_decimals(minor: int, text: str) -> None:
    assert format_money(minor) == text


@pytest.mark.parametrize(
    ("bp", "text"), [(1500, "15"), (1250, "12.5"), (1234, "12.34"), (5, "0.05"), (10000, "100")]
)
def test_basis_points_print_as_a_percentage_without_trailing_zeros(bp: int, text: str) -> None:
    assert format_percent(bp) == text


@pytest.mark.parametrize(
    ("mechanic", "name", "benefit", "text"),
    [
        (
            Mechanic.FAVORITE_PRODUCTS,
            "x",
            Benefit(BenefitKind.PERCENT, 1500),
            "Favorite product -15 %",
        ),
        (Mechanic.MEMBERS_ONLY, "x", Benefit(BenefitKind.FIXED_PRICE, 8990), "Members price 89.90"),
        (Mechanic.ALL_BUYERS, "x", Benefit(BenefitKind.BONUS_PERCENT, 500), "Bonus +5 %"),
        (
            Mechanic.ALL_BUYERS,
            "Autumn sale",
            Benefit(BenefitKind.PERCENT, 1000),
            "Autumn sale -10 %",
        ),
        (
            Mechanic.TARGET_AUDIENCE,
            "",
            Benefit(BenefitKind.AMOUNT_PER_UNIT, 250),
            "Offer -2.50 per unit",
        ),
        (
            Mechanic.FAVORITE_CATEGORIES,
            "x",
            Benefit(BenefitKind.PERCENT, 700),
            "Favorite category -7 %",
        ),
        (
            Mechanic.PERSONALIZED_OFFER,
            "x",
            Benefit(BenefitKind.PERCENT, 2000),
            "Personal offer -20 %",
        ),
        (
            Mechanic.ALL_BUYERS,
            "A very long name for an offer that goes on",
            Benefit(BenefitKind.PERCENT, 1000),
            "A very long name for an. -10 %",
        ),
    ],
)
def test_each_benefit_has_a_short_printable_text(
    mechanic: Mechanic, name: str, benefit: Benefit, text: str
) -> None:
    assert applied_benefit_text(mechanic, name, benefit) == text


def test_an_offers_own_text_wins() -> None:
    benefit = Benefit(BenefitKind.PERCENT, 1000)
    assert (
        applied_benefit_text(Mechanic.ALL_BUYERS, "x", benefit, "Pensioners -10%")
        == "Pensioners -10%"
    )
