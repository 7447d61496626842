"""The rules the favorites use cases apply (service/engine/favorites.py, validity.py): change
windows, how a change is judged, what auto-fill adds, which categories apply. Program zone
Europe/Berlin; Monday 23 November 2026."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from service.engine.favorites import (
    ChangeWindow,
    Slot,
    autofilled,
    category_change,
    change_refused,
    change_window,
    same_slots,
    selection_change,
)
from service.engine.model import (
    Benefit,
    BenefitKind,
    FavoriteCategoryTerms,
    FavoriteProductsOffer,
    Frequency,
    Level,
    ListSource,
    Offer,
)
from service.engine.selection import effective_groups
from service.engine.validity import check_offer_open, valid_at
from service.errors import FailedPrecondition, InvalidArgument

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(ZoneInfo("UTC"))  # type: ignore[misc]


MONDAY = berlin(2026, 11, 23, 12)


def favorite(
    frequency: Frequency = Frequency.WEEKLY, slots: int = 3, valid_to: datetime | None = None
) -> FavoriteProductsOffer:
    offer = Offer(
        "F", "Favorites", Level.INDIVIDUAL, Benefit(BenefitKind.PERCENT, 1000), valid_to=valid_to
    )
    return FavoriteProductsOffer(offer, slots, ListSource.PREDEFINED, "L", frequency)


def terms(**fields: object) -> FavoriteCategoryTerms:
    values: dict[str, object] = {
        "offer_id": "C",
        "name": "Categories",
        "group_ids": ("a", "b", "c"),
        "benefit": Benefit(BenefitKind.PERCENT, 500),
        "max_count": 2,
        "acceptance_required": True,
        "frequency": Frequency.WEEKLY,
    }
    values.update(fields)
    return FavoriteCategoryTerms(**values)  # type: ignore[arg-type]


def stored(*skus: str | None, auto: tuple[int, ...] = ()) -> dict[int, Slot]:
    return {i: Slot(i, sku, i in auto) for i, sku in enumerate(skus) if sku is not None}


# --- validity and change windows ---------------------------------------------------------------


def test_validity_is_half_open_and_an_offer_is_open_until_its_end() -> None:
    end = MONDAY + timedelta(days=1)
    assert valid_at(None, end, MONDAY) and not valid_at(None, end, end)
    assert valid_at(MONDAY, None, MONDAY) and not valid_at(end, None, MONDAY)
    check_offer_open(end, end - timedelta(microseconds=1))
    with pytest.raises(FailedPrecondition) as caught:
        check_offer_open(end, end)
    assert caught.value.reason == "OFFER_ENDED"


def test_a_change_window_is_now_next_monday_or_never_when_the_offer_ends_first() -> None:
    assert change_window(Frequency.WEEKLY, 0, None, MONDAY, BERLIN) == ChangeWindow(True)
    next_monday = berlin(2026, 11, 30)
    assert change_window(Frequency.WEEKLY, 0, MONDAY, MONDAY, BERLIN) == ChangeWindow(
        False, next_monday
    )
    ends = change_window(Frequency.WEEKLY, 0, MONDAY, MONDAY, BERLIN, valid_to=next_monday)
    assert ends == ChangeWindow(False, never_again=True)
    assert change_window(Frequency.ONE_TIME, 0, MONDAY, MONDAY, BERLIN).never_again


def test_a_refusal_says_when_or_never() -> None:
    later = change_refused(ChangeWindow(False, berlin(2026, 11, 30)))
    assert later.reason == "CHANGE_NOT_ALLOWED" and later.next_allowed == berlin(2026, 11, 30)
    never = change_refused(ChangeWindow(False, never_again=True), "a chosen category")
    assert never.next_allowed is None and "a chosen category may not" in never.message


# --- judging a member's selection --------------------------------------------------------------


def test_filling_is_allowed_and_leaves_the_period_alone() -> None:
    change = selection_change(
        favorite(), stored("x"), ["x", "y"], ["x", "y"], None, MONDAY, BERLIN, by_member=True
    )
    assert change.slots == ("x", "y", None) and change.last_change_at is None


def test_a_members_replacement_starts_the_period_and_a_second_one_is_refused() -> None:
    old = MONDAY - timedelta(days=7)
    change = selection_change(
        favorite(), stored("x"), ["x", "y"], ["y"], old, MONDAY, BERLIN, by_member=True
    )
    assert change.last_change_at == MONDAY
    with pytest.raises(FailedPrecondition) as caught:
        selection_change(
            favorite(), stored("y"), ["x", "y"], ["x"], MONDAY, MONDAY, BERLIN, by_member=True
        )
    assert caught.value.next_allowed == berlin(2026, 11, 30)


def test_an_operator_replaces_outside_the_frequency_and_auto_filled_slots_count_as_empty() -> None:
    earlier = MONDAY - timedelta(hours=1)
    by_operator = selection_change(
        favorite(), stored("y"), ["x", "y"], ["x"], earlier, MONDAY, BERLIN, by_member=False
    )
    assert by_operator.last_change_at == earlier  # the member's period is untouched
    over_autofill = selection_change(
        favorite(),
        stored("y", auto=(0,)),
        ["x", "y"],
        ["x"],
        MONDAY,
        MONDAY,
        BERLIN,
        by_member=True,
    )
    assert over_autofill.slots == ("x", None, None)


def test_a_sku_already_in_a_slot_stays_valid_and_others_name_the_skus_field() -> None:
    kept = selection_change(
        favorite(), stored("gone"), ["x"], ["gone", "x"], None, MONDAY, BERLIN, by_member=True
    )
    assert kept.slots == ("gone", "x", None)
    with pytest.raises(InvalidArgument) as caught:
        selection_change(favorite(), {}, ["x"], ["x", "q"], None, MONDAY, BERLIN, by_member=True)
    assert caught.value.field == "skus[1]"


def test_auto_fill_fills_empty_positions_with_list_candidates_not_in_a_slot() -> None:
    slots, added = autofilled(favorite(), stored(None, "b"), ["a", "b", "c", "d"])
    assert slots == ("a", "b", "c") and added == [(0, "a"), (2, "c")]
    assert autofilled(favorite(), stored("a", "b", "c"), ["d"])[1] == []


def test_trailing_empty_slots_do_not_make_a_selection_different() -> None:
    assert same_slots(("a", None, None), ("a",))
    assert not same_slots(("a", None), (None, "a"))


# --- favorite categories ------------------------------------------------------------------------


def test_the_groups_that_apply_are_counted_once_in_offered_order() -> None:
    chosen = terms(group_ids=("b", "b", "a", "c"), chosen_group_ids=frozenset({"a", "b"}))
    assert effective_groups(chosen) == ("b", "a")
    assert effective_groups(terms(acceptance_required=False, group_ids=("b", "b", "a"))) == (
        "b",
        "a",
    )
    assert effective_groups(terms(max_count=1, chosen_group_ids=frozenset({"c", "a"}))) == ("a",)


def test_adding_a_category_is_filling_and_a_swap_is_a_replacement() -> None:
    current = terms(chosen_group_ids=frozenset({"a"}))
    added = category_change(current, ["a", "b"], MONDAY, MONDAY, BERLIN)
    assert added.chosen == {"a", "b"} and added.last_change_at == MONDAY
    with pytest.raises(FailedPrecondition) as caught:
        category_change(current, ["b"], MONDAY, MONDAY, BERLIN)
    assert caught.value.reason == "CHANGE_NOT_ALLOWED"
    swapped = category_change(current, ["b"], None, MONDAY, BERLIN)
    assert swapped.last_change_at == MONDAY


def test_a_category_choice_needs_acceptance_an_open_offer_and_offered_groups() -> None:
    with pytest.raises(FailedPrecondition) as off:
        category_change(terms(acceptance_required=False), ["a"], None, MONDAY, BERLIN)
    assert off.value.reason == "ACCEPTANCE_OFF"
    with pytest.raises(FailedPrecondition) as ended:
        category_change(terms(valid_to=MONDAY), ["a"], None, MONDAY, BERLIN)
    assert ended.value.reason == "OFFER_ENDED"
    with pytest.raises(InvalidArgument) as caught:
        category_change(terms(), ["a", "q"], None, MONDAY, BERLIN)
    assert caught.value.field == "group_ids[1]"
