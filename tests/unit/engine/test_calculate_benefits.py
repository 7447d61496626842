"""spec §5 and 6 by worked examples: valuing benefits and combining them on a line."""

import pytest

from service.engine.model import BenefitKind, Mechanic
from tests.unit.engine.builders import (
    applied,
    exclusive,
    line,
    offer,
    one_line,
    run,
    snapshot,
)

PERCENT = BenefitKind.PERCENT
PER_UNIT = BenefitKind.AMOUNT_PER_UNIT
FIXED = BenefitKind.FIXED_PRICE
BONUS = BenefitKind.BONUS_PERCENT


# --- spec §5: one benefit on one line ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "the_line", "discount"),
    [
        # PERCENT: amount x bp / 10000, half up
        (PERCENT, 1500, line("milk-1", 10000), 1500),
        (PERCENT, 1000, line("milk-1", 12345), 1235),  # 1234.5 -> 1235
        (PERCENT, 1000, line("milk-1", 12344), 1234),  # 1234.4 -> 1234
        # on the amount, not on price x quantity (the register already gave 10 %)
        (PERCENT, 1000, line("milk-1", 9000, price=10000), 900),
        # AMOUNT_PER_UNIT: value x quantity / 1000, never above the amount
        (PER_UNIT, 250, line("milk-1", 9000, 3000), 750),
        (PER_UNIT, 5000, line("milk-1", 3000), 3000),
        # FIXED_PRICE: amount - price x quantity / 1000, if positive
        (FIXED, 8990, line("milk-1", 12000), 3010),
        (FIXED, 8990, line("milk-1", 24000, 2000), 6020),
        # 0.753 kg of apples at 299.00 per kg: amount 225.15 (225.147 rounded)
        (PERCENT, 1000, line("apple", 22515, 753, price=29900), 2252),  # 2251.5 -> 2252
        (PER_UNIT, 1000, line("apple", 22515, 753, price=29900), 753),  # per kg
        (FIXED, 19900, line("apple", 22515, 753, price=29900), 7530),  # 22515 - 14985
        # a 100 % discount takes the whole amount
        (PERCENT, 10000, line("milk-1", 4321), 4321),
    ],
)
def test_a_single_benefit_is_valued_on_the_line_amount(kind, value, the_line, discount) -> None:
    result = one_line(snapshot([offer("o", kind, value)]), the_line)
    assert applied(result) == [("o", discount, 0)]
    assert result.paid == the_line.amount - discount


def test_a_fixed_price_above_the_amount_gives_nothing() -> None:
    result = one_line(snapshot([offer("o", FIXED, 15000)]), line("milk-1", 12000))
    assert result.benefits == ()
    assert result.paid == 12000


def test_bonus_points_are_computed_on_the_amount_paid_after_discounts() -> None:
    snap = snapshot([offer("d", PERCENT, 1000), offer("b", BONUS, 500)])
    result = one_line(snap, line("milk-1", 10000))
    assert applied(result) == [("d", 1000, 0), ("b", 0, 450)]
    assert (result.discount, result.paid, result.points) == (1000, 9000, 450)


def test_a_hundred_percent_discount_leaves_nothing_for_bonus_points() -> None:
    snap = snapshot([offer("all", PERCENT, 10000), offer("b", BONUS, 500)])
    result = one_line(snap, line("milk-1", 5000))
    assert applied(result) == [("all", 5000, 0)]
    assert (result.paid, result.points) == (0, 0)


# --- spec §6: combining on a line --------------------------------------------------------------


def test_the_best_exclusive_offer_applies_alone() -> None:
    snap = snapshot([exclusive("e10", PERCENT, 1000), exclusive("e20", PERCENT, 2000)])
    assert applied(one_line(snap, line("milk-1", 10000))) == [("e20", 2000, 0)]


def test_exclusive_offers_tying_on_discount_go_to_the_higher_priority() -> None:
    snap = snapshot(
        [exclusive("a", PERCENT, 1000, priority=1), exclusive("b", PER_UNIT, 1000, priority=2)]
    )
    assert applied(one_line(snap, line("milk-1", 10000))) == [("b", 1000, 0)]


def test_exclusive_offers_tying_on_discount_and_priority_go_to_the_smaller_offer_id() -> None:
    snap = snapshot([exclusive("b", PERCENT, 1000), exclusive("a", PER_UNIT, 1000)])
    assert applied(one_line(snap, line("milk-1", 10000))) == [("a", 1000, 0)]


def test_combinable_offers_apply_in_priority_order_each_on_what_is_left_to_pay() -> None:
    snap = snapshot(
        [offer("second", PER_UNIT, 500, priority=1), offer("first", PERCENT, 1000, priority=2)]
    )
    # 10 % of 100.00 = 10.00, then 5.00 of the 90.00 left
    assert applied(one_line(snap, line("milk-1", 10000))) == [
        ("first", 1000, 0),
        ("second", 500, 0),
    ]


def test_a_percent_after_another_discount_is_a_percent_of_the_remainder() -> None:
    snap = snapshot([offer("a", PERCENT, 1000), offer("b", PERCENT, 1000)])  # ties: id order
    assert applied(one_line(snap, line("milk-1", 10000))) == [("a", 1000, 0), ("b", 900, 0)]


def test_a_fixed_price_after_another_discount_takes_the_remainder_down_to_the_price() -> None:
    snap = snapshot(
        [offer("pct", PERCENT, 1000, priority=2), offer("fix", FIXED, 8000, priority=1)]
    )
    # 10 % of 100.00 leaves 90.00; the fixed price 80.00 takes 10.00 more
    assert applied(one_line(snap, line("milk-1", 10000))) == [("pct", 1000, 0), ("fix", 1000, 0)]


def test_a_combinable_set_beats_a_smaller_exclusive_offer() -> None:
    snap = snapshot(
        [exclusive("e", PERCENT, 1500), offer("c1", PERCENT, 1000), offer("c2", PERCENT, 1000)]
    )
    assert applied(one_line(snap, line("milk-1", 10000))) == [("c1", 1000, 0), ("c2", 900, 0)]


def test_an_exclusive_offer_beats_a_smaller_combinable_set() -> None:
    snap = snapshot(
        [exclusive("e", PERCENT, 2000), offer("c1", PERCENT, 1000), offer("c2", PERCENT, 1000)]
    )
    assert applied(one_line(snap, line("milk-1", 10000))) == [("e", 2000, 0)]


def test_a_tie_between_the_exclusive_and_the_combinable_set_goes_to_the_exclusive() -> None:
    snap = snapshot(
        [exclusive("e", PERCENT, 1900), offer("c1", PERCENT, 1000), offer("c2", PERCENT, 1000)]
    )
    assert applied(one_line(snap, line("milk-1", 10000))) == [("e", 1900, 0)]


# --- the min-price cap: the last applied benefit is cut first ---------------------------------


def test_a_min_price_cuts_the_last_applied_benefit_first() -> None:
    # caviar: min price 90.00; 120.00 - 10 % (12.00) - 25.00 would be 83.00
    snap = snapshot(
        [offer("first", PERCENT, 1000, priority=2), offer("last", PER_UNIT, 2500, priority=1)]
    )
    result = one_line(snap, line("caviar", 12000))
    assert applied(result) == [("first", 1200, 0), ("last", 1800, 0)]
    assert result.paid == 9000


def test_a_benefit_cut_to_zero_is_dropped() -> None:
    snap = snapshot(
        [offer("first", PERCENT, 2500, priority=2), offer("last", PER_UNIT, 500, priority=1)]
    )
    result = one_line(snap, line("caviar", 12000))
    assert applied(result) == [("first", 3000, 0)]
    assert result.paid == 9000


def test_a_min_price_cut_goes_on_to_the_benefit_before_the_last() -> None:
    # 95.00 may lose only 5.00: the last (2.00) is dropped, the first cut from 9.50 to 3.00
    snap = snapshot(
        [offer("first", PERCENT, 1000, priority=2), offer("last", PER_UNIT, 200, priority=1)]
    )
    result = one_line(snap, line("caviar", 9500))
    assert applied(result) == [("first", 500, 0)]
    assert result.paid == 9000


def test_the_min_price_is_per_unit_times_the_quantity_rounded_half_up() -> None:
    snap = snapshot([offer("all", PERCENT, 5000)], products=[_weighed_with_min_price(1001)])
    # 0.5 kg: min 1001 x 0.5 = 500.5 -> 501; amount 1000 may lose 499
    result = one_line(snap, line("w", 1000, 500))
    assert result.paid == 501


def _weighed_with_min_price(min_price: int):
    from service.engine.model import Product, Unit

    return Product("w", "W", (), unit=Unit.WEIGHT, min_price=min_price)


def test_a_line_sold_below_its_min_price_already_gets_no_discount() -> None:
    snap = snapshot([offer("all", PERCENT, 1000), offer("b", BONUS, 1000)])
    result = one_line(snap, line("caviar", 8000))
    assert applied(result) == [("b", 0, 800)]  # bonus points do not lower the amount
    assert result.paid == 8000


def test_bonus_offers_are_all_added_whatever_their_stacking() -> None:
    snap = snapshot(
        [exclusive("e", PERCENT, 1000), exclusive("b1", BONUS, 100), offer("b2", BONUS, 200)]
    )
    result = one_line(snap, line("milk-1", 10000))
    assert applied(result) == [("e", 1000, 0), ("b1", 0, 90), ("b2", 0, 180)]


def test_an_excluded_product_gets_nothing_at_all() -> None:
    snap = snapshot(
        [
            offer("all", PERCENT, 1000),
            offer("b", BONUS, 500),
            offer("t", PERCENT, 500, scope="tobacco"),
        ]
    )
    result = one_line(snap, line("cigarettes", 10000))
    assert result.benefits == ()
    assert (result.discount, result.paid, result.points) == (0, 10000, 0)


def test_an_unknown_sku_gets_only_offers_on_all_products() -> None:
    snap = snapshot([offer("all", PERCENT, 1000), offer("dairy", PERCENT, 2000, scope="dairy")])
    result = run(snap, line("mystery", 10000), line("milk-1", 10000))
    mystery, milk = result.lines
    assert applied(mystery) == [("all", 1000, 0)]
    assert mystery.known_sku is False and milk.known_sku is True
    assert applied(milk) == [("all", 1000, 0), ("dairy", 1800, 0)]
    assert result.unknown_skus == ("mystery",)


def test_an_offer_on_a_group_applies_to_products_of_its_subcategories() -> None:
    snap = snapshot([offer("food", PERCENT, 1000, scope="everything-food")])
    result = run(snap, line("milk-1"), line("apple"), line("cigarettes"), line("bread"))
    assert [len(r.benefits) for r in result.lines] == [1, 1, 0, 0]


def test_totals_are_exact_sums_of_the_lines_in_request_order() -> None:
    snap = snapshot([offer("all", PERCENT, 333), offer("b", BONUS, 123)])
    lines = [
        line("milk-1", 1001, line_id="3"),
        line("apple", 2347, 753, line_id="1"),
        line("bread", 999, line_id="2"),
    ]
    result = run(snap, *lines)
    assert [r.line_id for r in result.lines] == ["3", "1", "2"]
    assert result.total_amount == sum(r.amount for r in result.lines) == 4347
    assert result.total_discount == sum(r.discount for r in result.lines)
    assert result.total_paid == sum(r.paid for r in result.lines) == 4347 - result.total_discount
    assert result.total_points == sum(r.points for r in result.lines)
    for r in result.lines:
        assert r.discount == sum(b.discount for b in r.benefits)
        assert r.points == sum(b.points for b in r.benefits)


def test_each_applied_benefit_says_its_offer_mechanic_kind_and_text() -> None:
    snap = snapshot([offer("o", PERCENT, 1500, name="Autumn")])
    (benefit,) = one_line(snap, line("milk-1")).benefits
    assert (benefit.offer_id, benefit.mechanic, benefit.kind) == ("o", Mechanic.ALL_BUYERS, PERCENT)
    assert benefit.text == "Autumn -15 %"


def test_an_offer_with_a_negative_value_gives_nothing() -> None:
    snap = snapshot(
        [offer("p", PERCENT, -1000), exclusive("f", FIXED, -5), offer("b", BONUS, -100)]
    )
    assert one_line(snap, line("milk-1")).benefits == ()


def test_a_zero_amount_line_gets_nothing() -> None:
    snap = snapshot([offer("p", PERCENT, 1000), offer("u", PER_UNIT, 100), offer("b", BONUS, 100)])
    result = one_line(snap, line("milk-1", 0, price=0))
    assert (result.benefits, result.paid) == ((), 0)
