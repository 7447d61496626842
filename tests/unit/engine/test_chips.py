"""Game chips in the engine (spec §20, docs/chips.md): grants on what a group paid, rewards
unlocked by spending chips, the refusal to spend more than held, the refund rule."""

from __future__ import annotations

import pytest

from service.engine.chips import CHIPS_INSUFFICIENT, check_chips_to_spend, chips_after_refund
from service.engine.definitions import check_chips_terms
from service.engine.model import Benefit, BenefitKind, Level, LimitUnit, UsageLimit
from service.errors import FailedPrecondition, InvalidArgument
from tests.unit.engine.builders import line, member, offer, receipt, run, snapshot

CHIPS, FIXED = BenefitKind.CHIPS, BenefitKind.FIXED_PRICE


def grant(offer_id: str = "chips", per: int = 50000, chips: int = 1, **f: object):
    return offer(offer_id, CHIPS, chips, chips_threshold=per, **f)  # type: ignore[arg-type]


def reward(offer_id: str = "knives", price: int = 100, cost: int = 10, **f: object):
    return offer(offer_id, FIXED, price, chips_price=cost, **f)  # type: ignore[arg-type]


def chips_by_line(result):
    granted: dict[str, int] = {}
    for award in result.chips.awards if result.chips else ():
        granted[award.line_id] = granted.get(award.line_id, 0) + award.chips
    return granted


# --- grants ---------------------------------------------------------------------------------


def test_one_chip_per_whole_threshold_paid_on_the_group_the_receipt_total():
    snap = snapshot([grant(scope="fruit")])
    result = run(snap, line("apple", 70000), line("banana", 53456), line("milk-1", 90000))
    # fruit paid 1 234.56: two whole 500.00, the milk does not count
    assert result.chips is not None and result.chips.granted == 2
    assert chips_by_line(result) == {"apple": 1, "banana": 1}
    assert result.total_paid == 213456, "chips take nothing off the receipt"


def test_chips_are_split_over_the_paying_lines_by_largest_remainder():
    snap = snapshot([grant(per=10000, chips=3)])
    result = run(snap, line("milk-1", 10000), line("milk-2", 10000), line("bread", 10000))
    assert chips_by_line(result) == {"milk-1": 3, "milk-2": 3, "bread": 3}
    odd = run(snapshot([grant(per=30000)]), line("milk-1", 10000), line("milk-2", 20000))
    assert chips_by_line(odd) == {"milk-2": 1}


def test_chips_count_what_is_paid_after_discounts():
    snap = snapshot([grant(scope="fruit"), offer("fruit-10", value=1000, scope="fruit")])
    assert run(snap, line("apple", 55000)).chips is None, "495.00 paid: no chip"
    assert run(snap, line("apple", 56000)).chips.granted == 1  # type: ignore[union-attr]


def test_excluded_products_never_earn_chips_and_unknown_skus_only_on_all_products():
    snap = snapshot([grant(per=10000)])
    result = run(snap, line("cigarettes", 90000), line("mystery", 10000))
    assert chips_by_line(result) == {"mystery": 1}
    scoped = snapshot([grant(per=10000, scope="fruit")])
    assert run(scoped, line("mystery", 90000)).chips is None


def test_an_anonymous_buyer_is_shown_chips_of_an_all_buyers_offer_not_of_a_members_one():
    snap = snapshot(
        [grant("all", per=10000), grant("members", per=10000, level=Level.MEMBERS_ONLY)]
    )
    anonymous = run(snap, line("bread", 20000))
    assert {a.offer_id for a in anonymous.chips.awards} == {"all"}  # type: ignore[union-attr]
    known = run(snap, line("bread", 20000), member=member())
    assert known.chips.granted == 4  # type: ignore[union-attr]


def test_a_grant_outside_its_validity_gives_nothing():
    from tests.unit.engine.builders import MONDAY_NOON

    snap = snapshot([grant(per=10000, valid_to=MONDAY_NOON)])
    assert run(snap, line("bread", 50000)).chips is None


# --- rewards --------------------------------------------------------------------------------


def test_a_reward_is_unlocked_by_spending_its_chips_and_only_then():
    snap = snapshot([reward(scope="bread")])
    rich = member(chips=25)
    locked = run(snap, line("bread", 5000), member=rich)
    assert locked.total_discount == 0 and locked.chips is None
    unlocked = run(snap, line("bread", 5000), member=rich, chips_to_spend=10)
    assert unlocked.total_paid == 100
    assert unlocked.lines[0].benefits[-1].offer_id == "knives"
    assert unlocked.chips is not None and unlocked.chips.spent == 10


def test_whole_units_are_unlocked_while_the_budget_lasts():
    snap = snapshot([reward(scope="bread")])
    three = line("bread", 15000, quantity=3000)
    result = run(snap, three, member=member(chips=25), chips_to_spend=25)
    # two units for 20 chips: 2 x 1.00 + 1 x 50.00
    assert result.total_paid == 5200
    assert result.chips.spent == 20  # type: ignore[union-attr]


def test_a_reward_comes_after_the_line_discounts_and_respects_the_min_price():
    snap = snapshot([reward(scope="everything-food", price=0), offer("ten", value=1000)])
    result = run(snap, line("caviar", 20000), member=member(chips=10), chips_to_spend=10)
    assert result.lines[0].paid == 9000, "caviar is never paid below its min price"
    assert [b.discount for b in result.lines[0].benefits] == [2000, 9000]


def test_a_reward_that_gives_nothing_costs_nothing():
    snap = snapshot([reward(scope="bread", price=9000)])
    result = run(snap, line("bread", 5000), member=member(chips=10), chips_to_spend=10)
    assert result.chips is None and result.total_discount == 0


def test_grants_count_what_is_paid_after_rewards():
    snap = snapshot([reward(scope="bread", price=0), grant(per=10000)])
    result = run(
        snap,
        line("bread", 10000),
        line("milk-1", 10000),
        member=member(chips=10),
        chips_to_spend=10,
    )
    assert result.chips is not None
    assert (result.chips.spent, result.chips.granted) == (10, 1)
    assert chips_by_line(result) == {"milk-1": 1}


def test_spending_more_chips_than_held_is_refused():
    with pytest.raises(FailedPrecondition) as refused:
        check_chips_to_spend(receipt(member=member(chips=9), chips_to_spend=10))
    assert refused.value.reason == CHIPS_INSUFFICIENT
    with pytest.raises(FailedPrecondition):
        check_chips_to_spend(receipt(chips_to_spend=1))  # an anonymous buyer holds none
    check_chips_to_spend(receipt(member=member(chips=10), chips_to_spend=10))


def test_a_refund_never_takes_the_balance_below_zero():
    assert chips_after_refund(5, taken_back=3, given_back=0) == 2
    assert chips_after_refund(2, taken_back=3, given_back=0) == 0
    assert chips_after_refund(0, taken_back=3, given_back=10) == 7


# --- back-office terms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "benefit", "threshold", "price", "limit", "field"),
    [
        (Level.ALL_BUYERS, Benefit(CHIPS, 1), 0, 0, None, "offer.chips_threshold"),
        (Level.ALL_BUYERS, Benefit(CHIPS, 1), -5, 0, None, "offer.chips_threshold"),
        (Level.ALL_BUYERS, Benefit(CHIPS, 1), 100, 10, None, "offer.chips_price"),
        (Level.ALL_BUYERS, Benefit(FIXED, 1), 100, 0, None, "offer.chips_threshold"),
        (Level.ALL_BUYERS, Benefit(FIXED, 1), 0, -1, None, "offer.chips_price"),
        (Level.TARGET_AUDIENCE, Benefit(CHIPS, 1), 100, 0, None, "offer.level"),
        (Level.INDIVIDUAL, Benefit(FIXED, 1), 0, 10, None, "offer.level"),
        (
            Level.MEMBERS_ONLY,
            Benefit(BenefitKind.BONUS_PERCENT, 1),
            0,
            10,
            None,
            "offer.benefit.kind",
        ),
        (
            Level.MEMBERS_ONLY,
            Benefit(CHIPS, 1),
            100,
            0,
            UsageLimit(LimitUnit.RECEIPTS, 1),
            "offer.usage_limit",
        ),
    ],
)
def test_bad_chips_terms_are_refused_naming_the_field(
    level, benefit, threshold, price, limit, field
):
    with pytest.raises(InvalidArgument) as refused:
        check_chips_terms(level, benefit, threshold, price, limit)
    assert refused.value.field == field


def test_good_chips_terms_pass():
    check_chips_terms(Level.ALL_BUYERS, Benefit(CHIPS, 1), 50000, 0, None)
    check_chips_terms(Level.MEMBERS_ONLY, Benefit(FIXED, 100), 0, 10, None)
    check_chips_terms(Level.TARGET_AUDIENCE, Benefit(FIXED, 100), 0, 0, None)


def test_bonus_points_follow_what_is_paid_after_the_reward():
    from service.engine.model import BenefitKind as K

    snap = snapshot([reward(scope="bread"), offer("points", K.BONUS_PERCENT, 200)])
    before = run(snap, line("bread", 5000), member=member(chips=10))
    assert before.total_points == 100
    after = run(snap, line("bread", 5000), member=member(chips=10), chips_to_spend=10)
    assert after.total_paid == 100
    assert after.total_points == after.lines[0].points == 2, "2 % of 1.00"
