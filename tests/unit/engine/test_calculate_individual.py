"""spec §7 by worked examples: favorite products, favorite categories, personalized offers,
and per-member usage limits."""

import threading

from service.engine import individual
from service.engine.model import (
    Benefit,
    BenefitKind,
    FavoriteCategoryTerms,
    Level,
    LimitPeriod,
    LimitUnit,
    Mechanic,
    PersonalOffer,
    ProductGroup,
    Stacking,
    UsageCharge,
    UsageLimit,
)
from tests.unit.engine.builders import (
    GROUPS,
    applied,
    exclusive,
    favorite_products,
    line,
    member,
    offer,
    one_line,
    run,
    snapshot,
    utc,
)

PERCENT = BenefitKind.PERCENT


# --- favorite products ------------------------------------------------------------------------


def test_a_sku_in_a_members_slot_gets_the_favorite_products_benefit() -> None:
    snap = snapshot(favorites=[favorite_products("fav", PERCENT, 1500)])
    fan = member(favorite_slots={"fav": frozenset({"milk-1", "apple"})})
    result = run(snap, line("milk-1"), line("milk-2"), member=fan)
    (benefit,) = result.lines[0].benefits
    assert (benefit.offer_id, benefit.discount) == ("fav", 1500)
    assert (benefit.mechanic, benefit.text) == (
        Mechanic.FAVORITE_PRODUCTS,
        "Favorite product -15 %",
    )
    assert result.lines[1].benefits == ()


def test_favorite_products_need_an_active_member() -> None:
    snap = snapshot(favorites=[favorite_products("fav")])
    slots = {"fav": frozenset({"milk-1"})}
    assert (
        one_line(snap, line("milk-1"), member=member(active=False, favorite_slots=slots)).benefits
        == ()
    )
    assert one_line(snap, line("milk-1")).benefits == ()


def test_favorite_products_follow_their_offers_validity_and_filters() -> None:
    snap = snapshot(
        favorites=[
            favorite_products("expired", valid_to=utc(2026, 1, 1)),
            favorite_products("elsewhere", store_ids=frozenset({"s9"})),
            favorite_products("ok", PERCENT, 500),
        ]
    )
    slots = {key: frozenset({"milk-1"}) for key in ("expired", "elsewhere", "ok")}
    result = one_line(snap, line("milk-1"), member=member(favorite_slots=slots), store_id="s1")
    assert applied(result) == [("ok", 500, 0)]


def test_slots_of_an_offer_the_snapshot_does_not_know_are_ignored() -> None:
    snap = snapshot(favorites=[favorite_products("fav")])
    result = one_line(
        snap, line("milk-1"), member=member(favorite_slots={"gone": frozenset({"milk-1"})})
    )
    assert result.benefits == ()


def test_a_favorite_product_unknown_to_the_catalogue_gets_nothing() -> None:
    snap = snapshot(favorites=[favorite_products("fav")])
    result = run(
        snap, line("mystery"), member=member(favorite_slots={"fav": frozenset({"mystery"})})
    )
    assert result.lines[0].benefits == ()
    assert result.unknown_skus == ("mystery",)


# --- favorite categories ----------------------------------------------------------------------


def category_terms(**fields) -> FavoriteCategoryTerms:
    defaults = dict(
        offer_id="fc",
        name="Favorite category",
        group_ids=("dairy", "fruit", "bread"),
        benefit=Benefit(PERCENT, 700),
        max_count=2,
        acceptance_required=False,
    )
    return FavoriteCategoryTerms(**(defaults | fields))  # type: ignore[arg-type]


def test_without_acceptance_every_offered_category_applies() -> None:
    snap = snapshot()
    result = run(
        snap,
        line("gouda"),
        line("apple"),
        line("bread"),
        line("caviar"),
        member=member(favorite_categories=(category_terms(),)),
    )
    assert [applied(r) for r in result.lines] == [
        [("fc", 700, 0)],
        [("fc", 700, 0)],
        [("fc", 700, 0)],
        [],
    ]
    assert result.lines[0].benefits[0].mechanic is Mechanic.FAVORITE_CATEGORIES
    assert result.lines[0].benefits[0].text == "Favorite category -7 %"


def test_with_acceptance_only_the_chosen_categories_still_offered_apply() -> None:
    terms = category_terms(acceptance_required=True, chosen_group_ids=frozenset({"fruit", "milk"}))
    result = run(
        snapshot(),
        line("milk-1"),
        line("apple"),
        line("bread"),
        member=member(favorite_categories=(terms,)),
    )
    # "milk" was chosen but is not offered any more
    assert [applied(r) for r in result.lines] == [[], [("fc", 700, 0)], []]


def test_with_acceptance_and_nothing_chosen_no_category_applies() -> None:
    terms = category_terms(acceptance_required=True)
    assert (
        one_line(snapshot(), line("apple"), member=member(favorite_categories=(terms,))).benefits
        == ()
    )


def test_chosen_categories_beyond_max_count_are_ignored_in_offered_order() -> None:
    terms = category_terms(
        acceptance_required=True, max_count=1, chosen_group_ids=frozenset({"bread", "fruit"})
    )
    result = run(
        snapshot(), line("apple"), line("bread"), member=member(favorite_categories=(terms,))
    )
    assert [applied(r) for r in result.lines] == [[("fc", 700, 0)], []]


def test_favorite_category_terms_have_their_own_validity_and_benefit() -> None:
    early = category_terms(offer_id="early", valid_to=utc(2026, 1, 1))
    fixed = category_terms(offer_id="fixed", benefit=Benefit(BenefitKind.FIXED_PRICE, 8000))
    result = one_line(
        snapshot(), line("milk-1", 10000), member=member(favorite_categories=(early, fixed))
    )
    assert applied(result) == [("fixed", 2000, 0)]


# --- personalized offers ----------------------------------------------------------------------


def personal(**fields) -> PersonalOffer:
    defaults = dict(offer_id="po", name="Just for you", benefit=Benefit(PERCENT, 2000))
    return PersonalOffer(**(defaults | fields))  # type: ignore[arg-type]


def test_a_personalized_offer_applies_to_its_skus() -> None:
    result = run(
        snapshot(),
        line("milk-1"),
        line("milk-2"),
        member=member(personal_offers=(personal(skus=frozenset({"milk-2"})),)),
    )
    assert [applied(r) for r in result.lines] == [[], [("po", 2000, 0)]]
    assert result.lines[1].benefits[0].mechanic is Mechanic.PERSONALIZED_OFFER
    assert result.lines[1].benefits[0].text == "Personal offer -20 %"


def test_a_personalized_offer_applies_to_its_group() -> None:
    result = run(
        snapshot(),
        line("apple"),
        line("milk-1"),
        member=member(personal_offers=(personal(group_id="fruit"),)),
    )
    assert [applied(r) for r in result.lines] == [[("po", 2000, 0)], []]


def test_a_personalized_offer_with_neither_skus_nor_group_applies_to_nothing() -> None:
    assert (
        one_line(snapshot(), line("milk-1"), member=member(personal_offers=(personal(),))).benefits
        == ()
    )


def test_a_personalized_offer_outside_its_validity_does_not_apply() -> None:
    po = personal(skus=frozenset({"milk-1"}), valid_from=utc(2026, 12, 1))
    assert one_line(snapshot(), line("milk-1"), member=member(personal_offers=(po,))).benefits == ()


def test_individual_and_general_offers_compete_on_the_line() -> None:
    snap = snapshot([offer("c1", PERCENT, 500), offer("c2", PERCENT, 500)])
    po = personal(
        skus=frozenset({"milk-1"}), benefit=Benefit(PERCENT, 1500), stacking=Stacking.EXCLUSIVE
    )
    # exclusive 15 % (1500) beats 5 % + 5 % (500 + 475)
    assert applied(one_line(snap, line("milk-1", 10000), member=member(personal_offers=(po,)))) == [
        ("po", 1500, 0)
    ]
    # a combinable personalized offer joins the set, in priority order
    po = personal(
        skus=frozenset({"milk-1"}),
        benefit=Benefit(PERCENT, 1000),
        stacking=Stacking.COMBINABLE,
        priority=1,
    )
    assert applied(one_line(snap, line("milk-1", 10000), member=member(personal_offers=(po,)))) == [
        ("po", 1000, 0),
        ("c1", 450, 0),
        ("c2", 428, 0),  # 8550 x 5 % = 427.5 -> 428
    ]


# --- usage limits -----------------------------------------------------------------------------


def test_a_receipts_limit_applies_while_used_is_below_the_limit_and_charges_one_receipt() -> None:
    po = personal(
        skus=frozenset({"milk-1", "milk-2"}),
        usage_limit=UsageLimit(LimitUnit.RECEIPTS, 2, LimitPeriod.MONTH),
    )
    used_once = member(personal_offers=(po,), usage={("po", "2026-11"): 1})
    result = run(snapshot(), line("milk-1"), line("milk-2"), member=used_once)
    assert [len(r.benefits) for r in result.lines] == [1, 1]
    assert result.usage == (UsageCharge("po", "2026-11", 1),)
    assert result.usage_left == (("po", 0),)  # once more this month, on this receipt
    used_up = member(personal_offers=(po,), usage={("po", "2026-11"): 2})
    result = run(snapshot(), line("milk-1"), member=used_up)
    assert (result.lines[0].benefits, result.usage) == ((), ())


def test_a_units_limit_covers_the_remaining_quantity_in_line_id_order() -> None:
    po = personal(
        skus=frozenset({"milk-1", "milk-2"}),
        benefit=Benefit(PERCENT, 1000),
        usage_limit=UsageLimit(LimitUnit.UNITS, 3000),
    )
    buyer = member(personal_offers=(po,), usage={("po", "OFFER"): 1500})  # 1.5 pieces left
    b = line("milk-1", 2030, 2000, line_id="b")  # 10 % of the whole line would be 203
    a = line("milk-2", 1000, 1000, line_id="a")
    for order in ((b, a), (a, b)):
        result = run(snapshot(), *order, member=buyer)
        by_id = {r.line_id: applied(r) for r in result.lines}
        assert by_id == {"a": [("po", 100, 0)], "b": [("po", 51, 0)]}  # 203 x 500/2000 = 50.75
        assert result.usage == (UsageCharge("po", "OFFER", 1500),)
        assert result.usage_left == (("po", 0),)
    one_piece = run(snapshot(), a, member=buyer)
    assert one_piece.usage_left == (("po", 500),)  # half a piece left after this one
    anonymous = run(snapshot(), a)
    assert anonymous.usage_left == ()  # the limit is per member: nothing to say


def test_a_units_limit_used_up_gives_nothing() -> None:
    po = personal(skus=frozenset({"milk-1"}), usage_limit=UsageLimit(LimitUnit.UNITS, 3000))
    result = run(
        snapshot(),
        line("milk-1"),
        member=member(personal_offers=(po,), usage={("po", "OFFER"): 3000}),
    )
    assert (result.lines[0].benefits, result.usage) == ((), ())


def test_a_units_limit_on_a_weighed_product_covers_part_of_a_kilo() -> None:
    limit = UsageLimit(LimitUnit.UNITS, 500, LimitPeriod.DAY)
    offer_ = offer("kg", PERCENT, 1000, level=Level.MEMBERS_ONLY, usage_limit=limit)
    result = run(snapshot([offer_]), line("apple", 22515, 753, price=29900), member=member())
    # 0.5 of 0.753 kg covered: 2252 x 500 / 753 = 1495.35 -> 1495
    assert applied(result.lines[0]) == [("kg", 1495, 0)]
    assert result.usage == (UsageCharge("kg", "2026-11-23", 500),)


def test_an_offer_level_units_limit_on_a_favorite_products_offer() -> None:
    fav = favorite_products(
        "fav", PERCENT, 1000, usage_limit=UsageLimit(LimitUnit.UNITS, 1000, LimitPeriod.MONTH)
    )
    fan = member(favorite_slots={"fav": frozenset({"milk-1", "milk-2"})})
    result = run(
        snapshot(favorites=[fav]),
        line("milk-2", line_id="2"),
        line("milk-1", line_id="1"),
        member=fan,
    )
    assert [applied(r) for r in result.lines] == [[], [("fav", 1000, 0)]]
    assert result.usage == (UsageCharge("fav", "2026-11", 1000),)


def test_units_are_spread_over_matching_lines_even_where_the_offer_then_loses() -> None:
    # decision: the spread does not depend on the other offers of a line, so adding an offer
    # to one line never moves a limited benefit to another line
    limit = UsageLimit(LimitUnit.UNITS, 1000)
    po = personal(
        skus=frozenset({"milk-1", "milk-2"}), benefit=Benefit(PERCENT, 500), usage_limit=limit
    )
    groups = (*GROUPS, ProductGroup("milk-1-only", "Milk 1", skus=frozenset({"milk-1"})))
    snap = snapshot([exclusive("big", PERCENT, 3000, scope="milk-1-only")], groups=groups)
    result = run(
        snap,
        line("milk-1", line_id="1"),
        line("milk-2", line_id="2"),
        member=member(personal_offers=(po,)),
    )
    assert [applied(r) for r in result.lines] == [[("big", 3000, 0)], []]
    assert result.usage == ()


def test_an_anonymous_receipt_is_capped_by_a_units_limit_and_charges_nothing() -> None:
    limited = offer("o", PERCENT, 1000, usage_limit=UsageLimit(LimitUnit.UNITS, 1000))
    result = run(snapshot([limited]), line("milk-2", line_id="2"), line("milk-1", line_id="1"))
    assert [applied(r) for r in result.lines] == [[], [("o", 1000, 0)]]
    assert result.usage == ()


def test_a_limited_benefit_cut_to_zero_by_the_min_price_is_not_charged() -> None:
    po = personal(
        skus=frozenset({"caviar"}),
        benefit=Benefit(PERCENT, 1000),
        stacking=Stacking.COMBINABLE,
        usage_limit=UsageLimit(LimitUnit.RECEIPTS, 5),
    )
    snap = snapshot([offer("first", PERCENT, 2500, priority=9)])
    result = run(snap, line("caviar", 12000), member=member(personal_offers=(po,)))
    assert applied(result.lines[0]) == [("first", 3000, 0)]
    assert result.usage == ()


def test_two_threads_compiling_one_personal_offer_share_one_rule(monkeypatch) -> None:
    """Two receipts of one member on two threads may meet the member's offer at once: the
    second to finish compiling takes the first one's rule, so every line memo of the member
    holds one rule per offer (rules are identity-hashed keys of a receipt's usage charges)."""
    offer = personal(skus=frozenset({"milk-1", "milk-2"}))
    rules = individual.individual_rules_for(snapshot(), member(personal_offers=(offer,)))
    assert rules is not None
    compile_offer = individual.rule_for_personal_offer
    first_inside, second_done = threading.Event(), threading.Event()

    def compiling(source):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "first":
            first_inside.set()
            assert second_done.wait(10)  # the second thread compiles meanwhile
        return compile_offer(source)

    monkeypatch.setattr(individual, "rule_for_personal_offer", compiling)
    got: dict[str, object] = {}

    def first() -> None:
        got["first"] = rules.line_candidates("milk-1", frozenset(), ())[0]

    thread = threading.Thread(target=first, name="first")
    thread.start()
    assert first_inside.wait(10)
    got["second"] = rules.line_candidates("milk-2", frozenset(), ())[0]
    second_done.set()
    thread.join(10)
    assert got["first"] is got["second"]
    assert rules.line_candidates("milk-1", frozenset(), ()) == (got["second"],)
