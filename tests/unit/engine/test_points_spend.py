"""spec §21 by worked examples and properties: spending bonus points on a receipt."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from service.engine.calculate import calculate
from service.engine.lifecycle import ConfirmedLine, refund_line
from service.engine.model import BenefitKind, Product, ReceiptResult
from service.engine.money import round_half_up
from service.engine.points_spend import PointsPolicy, PointsRequest, spread
from tests.unit.engine.builders import PRODUCTS, exclusive, line, offer, receipt, snapshot

HALF = PointsPolicy()  # 1 point = 1 minor unit, at most 50 %, no money kept per line


def spend(
    *lines,
    wanted: int | None = None,
    available: int = 1_000_000,
    policy: PointsPolicy = HALF,
    offers=(),
    products=PRODUCTS,
) -> ReceiptResult:
    snap = snapshot(offers, products=products)
    return calculate(snap, receipt(*lines), points=PointsRequest(wanted, available, policy))


def spent(result: ReceiptResult) -> list[int]:
    assert result.spend is not None
    return list(result.spend.per_line)


THREE = (line("milk-1", 1000), line("bread", 2000), line("milk-2", 3000))


def test_points_are_spread_over_the_lines_by_largest_remainder() -> None:
    # the spec §2 example: 100 over 1000, 2000, 3000 -> 16.67, 33.33, 50
    result = spend(*THREE, wanted=100)
    assert spent(result) == [17, 33, 50]
    assert result.spend is not None and result.spend.spent == 100 and result.spend.value == 100


def test_the_share_of_the_receipt_caps_what_may_be_spent() -> None:
    result = spend(*THREE, wanted=5000)
    assert result.spend is not None
    assert result.spend.allowed == 3000  # 50 % of 6000
    assert result.spend.requested == 5000
    assert spent(result) == [500, 1000, 1500]


def test_as_many_as_allowed_asks_for_the_cap() -> None:
    result = spend(*THREE, wanted=None)
    assert result.spend is not None and result.spend.requested == 3000
    assert sum(spent(result)) == 3000


def test_the_balance_caps_what_is_spent() -> None:
    # 40 over 1000, 2000, 3000: 6.67, 13.33, 20 -> the left-over unit to the largest remainder
    assert spent(spend(*THREE, wanted=None, available=40)) == [7, 13, 20]


def test_the_share_is_taken_of_what_is_left_after_discounts() -> None:
    result = spend(line("bread", 10000), wanted=None, offers=[offer("d", value=1000)])
    assert result.lines[0].paid == 9000
    assert spent(result) == [4500]


def test_a_line_is_never_paid_below_its_min_price_with_points() -> None:
    # caviar: min price 90.00, so of its 100.00 only 10.00 may be paid with points; its
    # proportional half (5000) is cut to 1000 and the other 4000 go to the bread
    result = spend(line("caviar", 10000), line("bread", 10000), wanted=None)
    assert spent(result) == [1000, 9000]


def test_excluded_products_are_never_paid_with_points() -> None:
    result = spend(line("cigarettes", 5000), line("bread", 5000), wanted=None)
    assert spent(result) == [0, 5000]  # the cap is half of the whole receipt, 5000


def test_a_line_can_keep_one_minor_unit_paid_in_money() -> None:
    policy = PointsPolicy(max_share_bp=10000, min_money_per_line=1)
    result = spend(line("milk-1", 100), line("bread", 1), wanted=None, policy=policy)
    assert spent(result) == [99, 0]


def test_points_worth_more_than_a_minor_unit_are_spent_whole() -> None:
    policy = PointsPolicy(point_value=10)
    result = spend(line("bread", 10005), wanted=None, policy=policy)
    assert result.spend is not None
    assert result.spend.allowed == 500  # 5002 minor units allowed: 500 whole points
    assert (result.spend.spent, result.spend.value) == (500, 5000)


def test_points_accrue_only_on_the_part_paid_in_money() -> None:
    bonus = offer("b", BenefitKind.BONUS_PERCENT, 500)
    result = spend(line("bread", 10000), wanted=4000, offers=[bonus])
    assert (result.lines[0].points, result.total_points) == (300, 300)  # 5 % of 6000
    everything = spend(
        line("bread", 10000),
        wanted=4000,
        offers=[bonus],
        policy=replace(HALF, accrue_on_money_only=False),
    )
    assert everything.lines[0].points == 500


def test_a_bonus_that_rounds_back_to_itself_keeps_its_line() -> None:
    """5 % of 10000 is 500; with 4 points spent, 5 % of 9996 is 499.8, half up 500 again:
    the line (and its benefits) stay as they were. With 20 spent, 5 % of 9980 is 499."""
    bonus = offer("b", BenefitKind.BONUS_PERCENT, 500)
    plain = calculate(snapshot([bonus]), receipt(line("bread", 10000)))
    few = spend(line("bread", 10000), wanted=4, offers=[bonus])
    assert spent(few) == [4]
    assert few.lines == plain.lines and few.total_points == 500
    more = spend(line("bread", 10000), wanted=20, offers=[bonus])
    assert (more.lines[0].points, more.lines[0].benefits[0].points, more.total_points) == (
        499,
        499,
        499,
    )


def test_nothing_is_spent_when_nothing_may_be() -> None:
    result = spend(line("cigarettes", 5000), wanted=100, offers=[exclusive("x")])
    assert spent(result) == [0]
    assert result.total_points == 0


def test_without_a_request_the_result_has_no_spend() -> None:
    assert calculate(snapshot(), receipt(*THREE)).spend is None


def test_spread_gives_the_rest_to_lines_with_room_again() -> None:
    assert spread(10, [1, 1, 1], [1, 100, 0]) == [1, 9, 0]


# --- properties ---------------------------------------------------------------------------


amounts = st.integers(min_value=0, max_value=10**7)
min_prices = st.one_of(st.none(), st.integers(min_value=0, max_value=10**7))


@st.composite
def receipts(draw):  # type: ignore[no-untyped-def]
    count = draw(st.integers(min_value=1, max_value=8))
    products, lines = [], []
    for i in range(count):
        sku = f"p{i}"
        excluded = draw(st.booleans()) and draw(st.booleans())
        products.append(Product(sku, sku, (), min_price=draw(min_prices), excluded=excluded))
        lines.append(line(sku, draw(amounts), line_id=f"l{i}", price=0))
    return products, lines


policies = st.builds(
    PointsPolicy,
    point_value=st.integers(min_value=1, max_value=100),
    max_share_bp=st.integers(min_value=0, max_value=10000),
    min_money_per_line=st.integers(min_value=0, max_value=5),
    accrue_on_money_only=st.booleans(),
)


@given(receipts(), policies, st.one_of(st.none(), st.integers(0, 10**8)), st.integers(0, 10**8))
def test_spending_never_passes_a_limit_and_adds_up(drawn, policy, wanted, available) -> None:
    products, lines = drawn
    result = spend(*lines, wanted=wanted, available=available, policy=policy, products=products)
    assert result.spend is not None
    parts = spent(result)
    total = sum(parts)
    assert total == result.spend.spent <= min(available, result.spend.allowed)
    if wanted is not None:
        assert total <= wanted
    assert total * policy.point_value <= result.total_paid * policy.max_share_bp // 10000
    for part, ln, product in zip(parts, result.lines, products, strict=True):
        assert part >= 0
        if product.excluded:
            assert part == 0
        money = ln.paid - part * policy.point_value
        assert money >= max(policy.min_money_per_line, 0) or part == 0
        if product.min_price is not None and part:
            assert money >= product.min_price  # quantity 1000: the floor is the min price


@given(
    st.integers(1, 10**6),
    st.lists(st.integers(1, 5), min_size=1, max_size=6),
)
def test_refunds_give_back_exactly_what_was_spent_never_more(points_spent, steps) -> None:
    quantity = sum(steps) * 1000
    line_ = ConfirmedLine(
        0, "l", "bread", quantity, 10**7, 0, (), frozenset(), points_spent=points_spent
    )
    returned = []
    for step in steps:
        share = refund_line(line_, step * 1000)
        returned.append(share.points_returned)
        line_ = replace(line_, refunded=line_.refunded + step * 1000)
    assert all(r >= 0 for r in returned)
    assert sum(returned) == points_spent


@given(st.integers(1, 10**6), st.integers(0, 10**6), st.integers(1, 2000))
def test_each_bonus_keeps_the_money_share_of_its_points_rounded_half_up(
    amount: int, wanted: int, basis_points: int
) -> None:
    bonus = offer("b", BenefitKind.BONUS_PERCENT, basis_points)
    before = calculate(snapshot([bonus]), receipt(line("bread", amount)))
    after = spend(line("bread", amount), wanted=wanted, offers=[bonus])
    paid, points = before.lines[0].paid, before.lines[0].points
    money = paid - spent(after)[0]
    expected = round_half_up(points * money, paid) if paid else points
    assert after.lines[0].points == after.total_points == expected
    assert sum(b.points for b in after.lines[0].benefits) == expected
