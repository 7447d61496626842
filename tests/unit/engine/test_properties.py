"""Properties of calculate() over generated receipts, offers and members."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.engine.calculate import calculate
from service.engine.model import (
    Benefit,
    BenefitKind,
    FavoriteCategoryTerms,
    FavoriteProductsOffer,
    Level,
    LimitPeriod,
    LimitUnit,
    Line,
    ListSource,
    Member,
    Offer,
    PersonalOffer,
    Receipt,
    ReceiptResult,
    Stacking,
    Unit,
    UsageLimit,
)
from service.engine.money import round_half_up
from service.engine.snapshot import Snapshot
from tests.unit.engine.builders import GROUPS, MONDAY_NOON, PRODUCTS, snapshot

PRODUCT_BY_SKU = {p.sku: p for p in PRODUCTS}
SKUS = [*PRODUCT_BY_SKU, "unknown-1", "unknown-2"]
GROUP_IDS = [g.id for g in GROUPS]
VALUES = {
    BenefitKind.PERCENT: st.integers(0, 12000),
    BenefitKind.AMOUNT_PER_UNIT: st.integers(0, 5000),
    BenefitKind.FIXED_PRICE: st.integers(0, 20000),
    BenefitKind.BONUS_PERCENT: st.integers(0, 3000),
}

benefits = st.sampled_from(list(VALUES)).flatmap(  # chips offers: test_chips.py
    lambda kind: VALUES[kind].map(lambda value: Benefit(kind, value))
)
stackings = st.sampled_from(list(Stacking))
limits = st.none() | st.builds(
    UsageLimit,
    unit=st.sampled_from(list(LimitUnit)),
    limit=st.integers(0, 4000),
    period=st.sampled_from(list(LimitPeriod)),
)


@st.composite
def offers(draw: st.DrawFn, prefix: str = "o", max_size: int = 8) -> list[Offer]:
    count = draw(st.integers(0, max_size))
    return [
        Offer(
            id=f"{prefix}{i}",
            name=f"Offer {i}",
            level=draw(
                st.sampled_from([Level.ALL_BUYERS, Level.MEMBERS_ONLY, Level.TARGET_AUDIENCE])
            ),
            benefit=draw(benefits),
            scope_group_id=draw(st.none() | st.sampled_from(GROUP_IDS)),
            priority=draw(st.integers(0, 3)),
            stacking=draw(stackings),
            usage_limit=draw(limits),
        )
        for i in range(count)
    ]


@st.composite
def members(draw: st.DrawFn) -> Member | None:
    if draw(st.booleans()):
        return None
    personal = tuple(
        PersonalOffer(
            offer_id=f"po{i}",
            name="P",
            benefit=draw(benefits),
            skus=frozenset(draw(st.lists(st.sampled_from(SKUS), max_size=3))),
            group_id=draw(st.none() | st.sampled_from(GROUP_IDS)),
            usage_limit=draw(limits),
            priority=draw(st.integers(0, 3)),
            stacking=draw(stackings),
        )
        for i in range(draw(st.integers(0, 3)))
    )
    categories = tuple(
        FavoriteCategoryTerms(
            offer_id=f"fc{i}",
            name="C",
            group_ids=tuple(draw(st.lists(st.sampled_from(GROUP_IDS), max_size=3, unique=True))),
            benefit=draw(benefits),
            max_count=draw(st.integers(0, 3)),
            acceptance_required=draw(st.booleans()),
            chosen_group_ids=frozenset(draw(st.lists(st.sampled_from(GROUP_IDS), max_size=3))),
            stacking=draw(stackings),
        )
        for i in range(draw(st.integers(0, 2)))
    )
    offer_ids = ["fav0", "fav1", "po0", "po1", "o0", "o1", "o2"]
    usage = draw(
        st.dictionaries(
            st.tuples(
                st.sampled_from(offer_ids),
                st.sampled_from(["OFFER", "2026-11", "2026-W48", "2026-11-23"]),
            ),
            st.integers(0, 4000),
            max_size=4,
        )
    )
    return Member(
        id="m",
        active=draw(st.booleans()) or draw(st.booleans()),
        favorite_slots={
            f"fav{i}": frozenset(draw(st.lists(st.sampled_from(SKUS), max_size=3)))
            for i in range(2)
        },
        favorite_categories=categories,
        personal_offers=personal,
        usage=usage,
    )


@st.composite
def lines(draw: st.DrawFn) -> tuple[Line, ...]:
    count = draw(st.integers(1, 8))
    result = []
    for i in range(count):
        sku = draw(st.sampled_from(SKUS))
        product = PRODUCT_BY_SKU.get(sku)
        if product is not None and product.unit is Unit.PIECE:
            quantity = draw(st.integers(1, 5)) * 1000
        else:
            quantity = draw(st.integers(1, 3000))
        price = draw(st.integers(0, 30000))
        full = round_half_up(price * quantity, 1000)
        amount = full - draw(st.integers(0, full))
        result.append(Line(f"L{i:02d}", sku, quantity, price, amount))
    return tuple(result)


@st.composite
def favorites(draw: st.DrawFn) -> list[FavoriteProductsOffer]:
    return [
        FavoriteProductsOffer(
            offer=Offer(
                id=f"fav{i}",
                name="F",
                level=Level.INDIVIDUAL,
                benefit=draw(benefits),
                stacking=draw(stackings),
                priority=draw(st.integers(0, 3)),
                usage_limit=draw(limits),
            ),
            slot_count=3,
            list_source=ListSource.PREDEFINED,
        )
        for i in range(draw(st.integers(0, 2)))
    ]


@st.composite
def cases(draw: st.DrawFn) -> tuple[Snapshot, Receipt, list[Offer], list[FavoriteProductsOffer]]:
    general = draw(offers())
    favs = draw(favorites())
    receipt = Receipt("r", MONDAY_NOON, draw(lines()), member=draw(members()))
    return snapshot(general, favorites=favs), receipt, general, favs


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def by_line_id(result: ReceiptResult) -> dict[str, object]:
    return {line.line_id: line for line in result.lines}


@SETTINGS
@given(cases())
def test_no_line_is_paid_below_zero_or_below_its_min_price(case) -> None:
    snap, receipt, _, _ = case
    for line, result in zip(receipt.lines, calculate(snap, receipt).lines, strict=True):
        assert result.paid >= 0 and result.discount >= 0 and result.points >= 0
        product = snap.product(line.sku)
        if result.discount and product is not None and product.min_price is not None:
            assert result.paid >= round_half_up(product.min_price * line.quantity, 1000)
        for benefit in result.benefits:
            assert benefit.discount >= 0 and benefit.points >= 0
            assert (benefit.discount > 0) != (benefit.points > 0)
            assert benefit.text


@SETTINGS
@given(cases())
def test_line_values_add_up_exactly_to_the_totals(case) -> None:
    snap, receipt, _, _ = case
    result = calculate(snap, receipt)
    assert [r.line_id for r in result.lines] == [line.line_id for line in receipt.lines]
    for line, r in zip(receipt.lines, result.lines, strict=True):
        assert r.amount == line.amount == r.discount + r.paid
        assert r.discount == sum(b.discount for b in r.benefits)
        assert r.points == sum(b.points for b in r.benefits)
    assert result.total_amount == sum(r.amount for r in result.lines)
    assert result.total_discount == sum(r.discount for r in result.lines)
    assert result.total_paid == sum(r.paid for r in result.lines)
    assert result.total_points == sum(r.points for r in result.lines)


@SETTINGS
@given(cases(), st.randoms(use_true_random=False))
def test_shuffling_the_lines_changes_nothing(case, rng: random.Random) -> None:
    snap, receipt, _, _ = case
    shuffled = list(receipt.lines)
    rng.shuffle(shuffled)
    first = calculate(snap, receipt)
    second = calculate(snap, replace(receipt, lines=tuple(shuffled)))
    assert by_line_id(first) == by_line_id(second)
    assert (first.usage, first.unknown_skus, first.total_discount, first.total_points) == (
        second.usage,
        second.unknown_skus,
        second.total_discount,
        second.total_points,
    )


@SETTINGS
@given(cases(), st.randoms(use_true_random=False))
def test_the_same_input_gives_the_same_output_whatever_the_order_of_offers(case, rng) -> None:
    snap, receipt, general, favs = case
    again = list(general)
    rng.shuffle(again)
    other = snapshot(again, favorites=list(reversed(favs)))
    assert calculate(snap, receipt) == calculate(snap, receipt) == calculate(other, receipt)


@SETTINGS
@given(cases())
def test_an_excluded_product_never_gets_a_benefit(case) -> None:
    snap, receipt, _, _ = case
    for line, result in zip(receipt.lines, calculate(snap, receipt).lines, strict=True):
        product = snap.product(line.sku)
        if product is not None and product.excluded:
            assert result.benefits == () and result.paid == line.amount


@SETTINGS
@given(cases())
def test_an_unknown_sku_gets_only_offers_on_all_products(case) -> None:
    snap, receipt, general, _ = case
    everywhere = {o.id for o in general if o.scope_group_id is None}
    result = calculate(snap, receipt)
    for r in result.lines:
        if r.sku.startswith("unknown"):
            assert not r.known_sku
            assert {b.offer_id for b in r.benefits} <= everywhere
    assert set(result.unknown_skus) == {
        line.sku for line in receipt.lines if line.sku.startswith("unknown")
    }


@SETTINGS
@given(cases())
def test_explain_lists_losers_but_changes_no_number(case) -> None:
    snap, receipt, _, _ = case
    plain = calculate(snap, receipt)
    explained = calculate(snap, receipt, explain=True)
    stripped = replace(explained, lines=tuple(replace(r, rejected=()) for r in explained.lines))
    assert stripped == plain


@SETTINGS
@given(
    cases(),
    benefits.filter(lambda b: b.kind is not BenefitKind.BONUS_PERCENT),
    st.none() | st.sampled_from(GROUP_IDS),
    st.integers(0, 3),
    limits,
)
def test_adding_a_combinable_offer_never_makes_the_customer_worse_off(
    case, benefit, scope, priority, limit
) -> None:
    snap, receipt, general, favs = case
    extra = Offer(
        "extra",
        "Extra",
        Level.ALL_BUYERS,
        benefit,
        scope,
        priority,
        Stacking.COMBINABLE,
        usage_limit=limit,
    )
    before = calculate(snap, receipt)
    after = calculate(snapshot([*general, extra], favorites=favs), receipt)
    for old, new in zip(before.lines, after.lines, strict=True):
        assert new.discount >= old.discount, (old, new)
    assert after.total_discount >= before.total_discount


@SETTINGS
@given(cases(), lines())
def test_memos_warmed_by_other_receipts_change_no_result(case, other_lines) -> None:
    """The member's memo (compiled terms, merged candidates per SKU) is kept on the snapshot
    between receipts: a snapshot that served other receipts of the member first gives what a
    fresh snapshot gives."""
    snap, receipt, general, favs = case
    cold = calculate(snapshot(general, favorites=favs), receipt)
    calculate(snap, replace(receipt, lines=other_lines))
    calculate(snap, replace(receipt, lines=other_lines), explain=True)
    assert calculate(snap, receipt) == cold == calculate(snap, receipt)
